"""The ``llmops demo`` command."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from llmops_cli.demo.platform import Services, ensure_running
from llmops_cli.demo.run import FAST, FULL, Demo

console = Console()


def demo(
    fast: Annotated[
        bool, typer.Option("--fast", help="A reduced run (fewer facts, a shorter canary): minutes.")
    ] = False,
    sabotage: Annotated[
        bool,
        typer.Option("--sabotage", help="Users 'correct' answers to wrong ones: the challenger should be rolled back."),
    ] = False,
    out: Annotated[Path, typer.Option("--out", help="Where the report and the plot go.")] = Path("demo-report"),
) -> None:
    """The closed loop end to end: feedback -> LoRA training -> canary experiment -> promotion or rollback."""
    log = console.print
    with ensure_running(log=log), console.status("starting") as status:
        services = Services()
        try:
            summary = Demo(services, FAST if fast else FULL, sabotage=sabotage, log=log, progress=status.update).run(
                out
            )
        except RuntimeError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
        finally:
            services.close()
    decision = {"promoted": "PROMOTED", "rolled_back": "ROLLED BACK"}.get(summary["outcome"], summary["outcome"])
    console.print(f"report: {summary['report']}\nplot: {summary['plot']}")
    console.print(f"decision: [bold]{decision}[/bold] after {summary['seconds']:.0f} s")
