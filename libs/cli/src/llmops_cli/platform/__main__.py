"""``python -m llmops_cli.platform apply|diff|export``: the platform file's commands alone.

They need only httpx, typer, rich and PyYAML, so the gateway image carries them for the Helm chart's apply Job
(GitOps: the chart's platform file applied after every install and upgrade) without the whole CLI's model, training
and MLflow dependencies. Same functions as ``llmops apply|diff|export``.
"""

import typer

from llmops_cli.platform import commands

app = typer.Typer(name="llmops-platform", no_args_is_help=True, pretty_exceptions_show_locals=False)
app.command()(commands.apply)
app.command()(commands.diff)
app.command()(commands.export)

if __name__ == "__main__":
    app()
