"""``llmops status``: is each platform service up and ready?"""

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmops_cli.services import READY_PATHS, service_urls

console = Console()


def probe(url: str, *, path: str = "/readyz", timeout_s: float = 3.0) -> tuple[str, str]:
    """(state, details) of one service from its ``/readyz``: ready, degraded, not ready or unreachable."""
    try:
        response = httpx.get(f"{url}{path}", timeout=timeout_s)
    except httpx.HTTPError as exc:
        return "unreachable", f"{exc.__class__.__name__}: {exc}"
    try:
        body = response.json()
        checks = body.get("checks") or {}
        reported = body.get("status")
    except (ValueError, AttributeError):
        checks, reported = {}, None
    failed = "; ".join(f"{name}: {result}" for name, result in checks.items() if result != "ok")
    if response.status_code != 200:
        return "not ready", failed or f"HTTP {response.status_code}"
    # 200 with failing checks: the service serves part of its traffic (e.g. the gateway without Redis).
    if reported == "degraded":
        return "degraded", failed
    return "ready", ", ".join(f"{name} ok" for name in checks)


def status() -> None:
    """Show each service's readiness (GET /readyz). Exits 1 when a service is not ready or unreachable."""
    table = Table()
    for column in ("service", "URL", "state", "details"):
        table.add_column(column)
    all_ready = True
    for name, url in service_urls().items():
        state, details = probe(url, path=READY_PATHS.get(name, "/readyz"))
        all_ready &= state in ("ready", "degraded")
        colour = {"ready": "green", "degraded": "yellow"}.get(state, "red")
        table.add_row(name, escape(url), f"[{colour}]{state}[/{colour}]", escape(details))
    console.print(table)
    if not all_ready:
        raise typer.Exit(1)
