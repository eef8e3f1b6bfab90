"""``llmops admins create|list|revoke`` (admin identities with roles) and ``llmops audit`` (what admins changed)."""

import json
from typing import Annotated
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmops_cli.client import AdminClient, GatewayUrl

app = typer.Typer(help="Admin identities: admin, team-admin (one team's keys) or viewer.", no_args_is_help=True)
console = Console()

_ROLES = ("admin", "team-admin", "viewer")


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Who the identity is for.")],
    role: Annotated[str, typer.Option(help="admin, team-admin or viewer.")],
    team: Annotated[str | None, typer.Option(help="A team-admin's team.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print only {"id": ..., "token": ...} as JSON.')] = False,
    gateway_url: GatewayUrl = None,
) -> None:
    """Create an admin identity. Its token is shown this once; give it as LLMOPS_ADMIN_TOKEN."""
    if role not in _ROLES:
        raise typer.BadParameter(f"--role takes one of {', '.join(_ROLES)}; got {role!r}")
    created = AdminClient(gateway_url).post("/admin/identities", {"name": name, "role": role, "team": team})
    if as_json:
        print(json.dumps({"id": created["id"], "token": created["token"]}))
        return
    console.print(f"Created {escape(created['role'])} [bold]{escape(created['id'])}[/bold] ({escape(name)}).")
    console.print("This is the only time the token is shown; store it now:")
    print(created["token"], flush=True)  # plain print: rich would wrap it


@app.command("list")
def list_identities(
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
    gateway_url: GatewayUrl = None,
) -> None:
    """List admin identities (never their tokens)."""
    identities = AdminClient(gateway_url).get("/admin/identities")["data"]
    if as_json:
        print(json.dumps(identities, indent=2))
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    for column in ("name", "role", "team", "revoked"):
        table.add_column(column, overflow="fold")
    for i in identities:
        cells = (i["id"], i["name"], i["role"], i.get("team") or "", i.get("revoked_at") or "")
        table.add_row(*map(escape, cells))
    console.print(table)


@app.command()
def revoke(
    identity_id: Annotated[str, typer.Argument(metavar="ID", help="The identity's id.")],
    gateway_url: GatewayUrl = None,
) -> None:
    """Revoke an admin identity; its token is refused from the next request on."""
    AdminClient(gateway_url).delete(f"/admin/identities/{quote(identity_id, safe='')}")
    console.print(f"Revoked {identity_id}.")


def audit(
    since: Annotated[str | None, typer.Option(help="How far back: 24h, 7d, or an ISO time.")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this identity ('platform': the admin token).")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. keys.update.")] = None,
    target: Annotated[str | None, typer.Option(help="Only this object (a key id, route, team...).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries (with before and after) as JSON.")] = False,
    gateway_url: GatewayUrl = None,
) -> None:
    """What admins changed: who, what, when (with --json also each object before and after)."""
    params = {"since": since, "actor": actor, "action": action, "target": target, "limit": limit}
    entries = AdminClient(gateway_url).get("/admin/audit", {k: v for k, v in params.items() if v is not None})["data"]
    if as_json:
        print(json.dumps(entries, indent=2))
        return
    # Ids are what other commands take: never folded; 80 columns hold them beside a short time and the action.
    table = Table()
    table.add_column("UTC", no_wrap=True)
    table.add_column("who", no_wrap=True)
    table.add_column("action", overflow="fold")
    table.add_column("target", no_wrap=True)
    for e in entries:
        when = e["at"][5:16].replace("T", " ")  # MM-DD HH:MM
        table.add_row(when, escape(e["actor"]), escape(e["action"]), escape(e["target"]))
    console.print(table)
