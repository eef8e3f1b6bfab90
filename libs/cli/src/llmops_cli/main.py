"""The ``llmops`` command."""

import typer

from llmops_cli import experiments, feedback, keys, models, retraining, routes
from llmops_cli.demo.command import demo
from llmops_cli.ingest import ingest
from llmops_cli.status import status
from llmops_cli.train import train
from llmops_cli.up import up

app = typer.Typer(
    name="llmops",
    help="LLMOps platform: run it locally and administer it.",
    no_args_is_help=True,
    # Locals in a traceback could include the admin token or a freshly created key secret.
    pretty_exceptions_show_locals=False,
)
app.command()(up)
app.command()(status)
app.command()(ingest)
app.command()(train)
app.command()(demo)
app.add_typer(keys.app, name="keys")
app.add_typer(routes.app, name="routes")
app.add_typer(models.app, name="models")
app.add_typer(feedback.app, name="feedback")
app.add_typer(experiments.app, name="experiments")
app.add_typer(retraining.app, name="retraining")

if __name__ == "__main__":
    app()
