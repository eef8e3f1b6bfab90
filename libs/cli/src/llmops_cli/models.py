"""``llmops models prepare``: the bundled model as a Hugging Face checkpoint in the cache, once."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from llmops_cli.client import fail
from llmops_models import prepare as preparation  # light: torch and transformers load only to convert

app = typer.Typer(help="Prepare the models the platform serves.", no_args_is_help=True)
console = Console(stderr=True)


@app.command()
def prepare(
    source: Annotated[
        Path | None,
        typer.Option(
            "--source", exists=True, dir_okay=False, help="A GGUF file (default: the bundled SmolLM2-135M-Instruct)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", file_okay=False, help="Output directory (default: in ~/.cache/llmops/models)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Convert again even if the checksums match.")] = False,
) -> None:
    """Convert the GGUF into a Hugging Face checkpoint, with checksums; does nothing when it is up to date."""
    try:
        path = preparation.prepare(source=source, dest=output, force=force)
    except preparation.PrepareError as exc:
        fail(str(exc))
    console.print(f"Model ready: {path}")
