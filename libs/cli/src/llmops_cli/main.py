"""The ``llmops`` command."""

import typer

from llmops_cli import (
    admins,
    evaluation,
    experiments,
    feedback,
    keys,
    models,
    prompts,
    retraining,
    routes,
    spend,
    teams,
)
from llmops_cli.demo.command import demo
from llmops_cli.ingest import ingest
from llmops_cli.platform import commands as platform_config
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
app.command()(spend.spend)
app.command()(admins.audit)
app.command()(platform_config.apply)
app.command()(platform_config.diff)
app.command()(platform_config.export)
app.command()(platform_config.promote)
app.add_typer(keys.app, name="keys")
app.add_typer(routes.app, name="routes")
app.add_typer(prompts.app, name="prompts")
app.add_typer(teams.app, name="teams")
app.add_typer(admins.app, name="admins")
app.add_typer(spend.prices_app, name="prices")
app.add_typer(models.app, name="models")
app.add_typer(feedback.app, name="feedback")
app.add_typer(experiments.app, name="experiments")
app.add_typer(retraining.app, name="retraining")
app.add_typer(evaluation.app, name="eval")

if __name__ == "__main__":
    app()
