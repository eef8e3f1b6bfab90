"""``llmops keys create|list|revoke|move|budget|collections``: API keys through the gateway's admin API."""

import json
import re
from typing import Annotated
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmops_cli.client import AdminClient, GatewayUrl
from llmops_cli.teams import BudgetDaily, BudgetMonthly, budget_body, format_budget

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


Collections = Annotated[
    list[str] | None,
    typer.Option(
        "--collection",
        help="A RAG collection the key may retrieve from (within what each route allows); repeatable. "
        "Default: any collection its routes allow.",
    ),
]


def format_collections(collections: list[str] | None) -> str:
    if collections is None:
        return "any"
    return ", ".join(collections) or "none"


@app.command()
def create(
    name: Annotated[str, typer.Option("--name", help="A label for the key (who or what uses it).")],
    rpm: Annotated[int | None, typer.Option(min=1, help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(min=1, help="Tokens per minute.")] = None,
    tpd: Annotated[int | None, typer.Option(min=1, help="Tokens per day.")] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", min=1, help="Cap on each request's max_tokens.")
    ] = None,
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
    collection: Collections = None,
    team: Annotated[str | None, typer.Option("--team", help="The team the key belongs to.")] = None,
    tier: Annotated[str | None, typer.Option("--tier", help="A label routing rules match on, e.g. free.")] = None,
    budget_daily: BudgetDaily = None,
    budget_monthly: BudgetMonthly = None,
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
    # Only what is given: the body stays what an older gateway accepts unless a newer option is used.
    if max_tokens is not None:
        body["limits"]["max_tokens"] = max_tokens
    if collection:
        body["allowed_collections"] = collection
    if team is not None:
        body["team"] = team
    if tier is not None:
        body["tier"] = tier
    if budget_daily is not None or budget_monthly is not None:
        body["budget"] = budget_body(budget_daily, budget_monthly)
    created = AdminClient(gateway_url).post("/admin/keys", body)
    if as_json:
        print(json.dumps({"id": created["id"], "key": created["key"]}))
        return
    console.print(
        f"Created key [bold]{escape(str(created['id']))}[/bold] ({escape(created.get('name') or name)}), "
        f"team: {escape(created.get('team') or 'none')}, limits: {format_limits(created.get('limits'))}, "
        f"budget: {format_budget(created.get('budget'))}, expires: {created.get('expires_at') or 'never'}."
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
    for column in ("name", "team", "prefix", "limits", "routes", "collections", "expires", "revoked"):
        table.add_column(column, overflow="fold")
    for key in keys:
        parts = (format_limits(key.get("limits")), format_budget(key.get("budget")))
        limits = " ".join(p for p in parts if p not in ("unlimited", "none")) or "unlimited"
        cells = (
            str(key["id"]),
            key.get("name") or "",
            key.get("team") or "",
            key.get("prefix") or "",
            limits,
            ", ".join(key.get("allowed_routes") or []) or "all",
            format_collections(key.get("allowed_collections")),
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


@app.command()
def move(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (see llmops keys list).")],
    team: Annotated[str | None, typer.Option("--team", help="The team to move it to; leave out for none.")] = None,
    gateway_url: GatewayUrl = None,
) -> None:
    """Move a key to another team (or out of any); its spend from then on counts against that team."""
    key = AdminClient(gateway_url).request("PATCH", f"/admin/keys/{quote(key_id, safe='')}", json={"team": team})
    console.print(f"Key {escape(key['id'])} now belongs to team {escape(key.get('team') or 'none')}.")


@app.command()
def budget(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (see llmops keys list).")],
    budget_daily: BudgetDaily = None,
    budget_monthly: BudgetMonthly = None,
    gateway_url: GatewayUrl = None,
) -> None:
    """Set (replace) a key's own budget, beside its team's; leave both out to remove it."""
    path = f"/admin/keys/{quote(key_id, safe='')}"
    key = AdminClient(gateway_url).request("PATCH", path, json={"budget": budget_body(budget_daily, budget_monthly)})
    console.print(f"Key {escape(key['id'])}: budget {format_budget(key.get('budget'))}.")


@app.command()
def collections(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (see llmops keys list).")],
    collection: Collections = None,
    none: Annotated[bool, typer.Option("--none", help="No collection at all: the key never retrieves.")] = False,
    gateway_url: GatewayUrl = None,
) -> None:
    """Set (replace) the RAG collections a key may retrieve from; leave out --collection for any its routes allow."""
    if none and collection:
        raise typer.BadParameter("give --collection or --none, not both", param_hint="--none")
    grant = [] if none else (collection or None)
    path = f"/admin/keys/{quote(key_id, safe='')}"
    key = AdminClient(gateway_url).request("PATCH", path, json={"allowed_collections": grant})
    console.print(f"Key {escape(key['id'])}: collections {escape(format_collections(key.get('allowed_collections')))}.")
