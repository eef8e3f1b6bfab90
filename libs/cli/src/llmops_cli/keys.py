"""``llmops keys create|list|revoke``: API keys through the gateway's admin API."""

import json
import re
from typing import Annotated
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmops_cli.client import AdminClient, GatewayUrl

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
console = Console()

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """``30d``, ``12h``, ``45m``, ``3600s``, ``2w`` or plain seconds -> seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text.lower())
    if not match or int(match.group(1)) <= 0:
        raise typer.BadParameter(f"expected a positive duration like 30d, 12h, 45m or 3600s; got {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def format_limits(limits: dict | None) -> str:
    parts = [f"{name}={value}" for name, value in (limits or {}).items() if value is not None]
    return " ".join(parts) or "unlimited"


@app.command()
def create(
    name: Annotated[str, typer.Option("--name", help="A label for the key (who or what uses it).")],
    rpm: Annotated[int | None, typer.Option(min=1, help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(min=1, help="Tokens per minute.")] = None,
    tpd: Annotated[int | None, typer.Option(min=1, help="Tokens per day.")] = None,
    expires_in: Annotated[
        int | None,
        typer.Option(
            "--expires-in",
            parser=parse_duration,
            metavar="DURATION",
            help="Expiry, e.g. 30d, 12h, 3600s.",
        ),
    ] = None,
    route: Annotated[
        list[str] | None,
        typer.Option(
            "--route",
            help="A route (model name) the key may use; repeatable. Default: every route.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print only {"id": ..., "key": ...} as JSON.')] = False,
    gateway_url: GatewayUrl = None,
) -> None:
    """Create an API key. Its secret is shown this once and cannot be retrieved later."""
    body = {
        "name": name,
        "limits": {"rpm": rpm, "tpm": tpm, "tpd": tpd},
        "expires_in_s": expires_in,
        "allowed_routes": route or None,
    }
    created = AdminClient(gateway_url).post("/admin/keys", body)
    if as_json:
        print(json.dumps({"id": created["id"], "key": created["key"]}))
        return
    console.print(
        f"Created key [bold]{escape(str(created['id']))}[/bold] ({escape(created.get('name') or name)}), "
        f"limits: {format_limits(created.get('limits'))}, expires: {created.get('expires_at') or 'never'}."
    )
    console.print("This is the only time the secret is shown; store it now:")
    print(created["key"], flush=True)  # plain print: rich would wrap a long secret across lines


@app.command("list")
def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="Print the keys as JSON.")] = False,
    gateway_url: GatewayUrl = None,
) -> None:
    """List API keys (never their secrets)."""
    keys = AdminClient(gateway_url).get("/admin/keys")["data"]
    if as_json:
        print(json.dumps(keys, indent=2))
        return
    table = Table()
    # Ids are what `keys revoke` takes: never truncate them; the other columns fold instead.
    table.add_column("id", no_wrap=True, min_width=max((len(str(k["id"])) for k in keys), default=2))
    for column in ("name", "prefix", "limits", "routes", "expires", "revoked"):
        table.add_column(column, overflow="fold")
    for key in keys:
        cells = (
            str(key["id"]),
            key.get("name") or "",
            key.get("prefix") or "",
            format_limits(key.get("limits")),
            ", ".join(key.get("allowed_routes") or []) or "all",
            key.get("expires_at") or "never",
            key.get("revoked_at") or "",
        )
        table.add_row(*map(escape, cells))
    console.print(table)


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (see llmops keys list).")],
    gateway_url: GatewayUrl = None,
) -> None:
    """Revoke an API key; the gateway refuses it from then on."""
    AdminClient(gateway_url).delete(f"/admin/keys/{quote(key_id, safe='')}")
    console.print(f"Revoked key {key_id}.")
