"""``llmops teams create|list|show|budget``: teams own keys; a team's budget bounds all its keys' spend together."""

import json
from decimal import Decimal
from typing import Annotated
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmops_cli.client import AdminClient, GatewayUrl

app = typer.Typer(help="Create, list and show teams, and set their budgets.", no_args_is_help=True)
console = Console()

BudgetDaily = Annotated[
    Decimal | None, typer.Option("--budget-daily", min=0, help="Spend allowed per UTC day, in the currency.")
]
BudgetMonthly = Annotated[
    Decimal | None, typer.Option("--budget-monthly", min=0, help="Spend allowed per calendar month (UTC).")
]


def decimal_text(amount: Decimal) -> str:
    """As the gateway takes amounts: plain digits (``1000``), never ``1E+3`` (what ``str`` gives for ``1e3``)."""
    return format(amount, "f")


def budget_body(daily: Decimal | None, monthly: Decimal | None) -> dict:
    return {
        "daily": decimal_text(daily) if daily is not None else None,
        "monthly": decimal_text(monthly) if monthly is not None else None,
    }


def format_budget(budget: dict | None) -> str:
    parts = [f"{period}={budget[period]}" for period in ("daily", "monthly") if (budget or {}).get(period)]
    return " ".join(parts) or "none"


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="The team's name (lower case letters, digits, . _ -).")],
    description: Annotated[str | None, typer.Option(help="What the team is.")] = None,
    budget_daily: BudgetDaily = None,
    budget_monthly: BudgetMonthly = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the team as JSON.")] = False,
    gateway_url: GatewayUrl = None,
) -> None:
    """Create a team. Give keys to it with `llmops keys create --team NAME`."""
    body = {"name": name, "description": description, "budget": budget_body(budget_daily, budget_monthly)}
    team = AdminClient(gateway_url).post("/admin/teams", body)
    if as_json:
        print(json.dumps(team, indent=2))
        return
    console.print(f"Created team [bold]{escape(team['name'])}[/bold], budget: {format_budget(team.get('budget'))}.")


@app.command("list")
def list_teams(
    as_json: Annotated[bool, typer.Option("--json", help="Print the teams as JSON.")] = False,
    gateway_url: GatewayUrl = None,
) -> None:
    """List teams with their budgets and number of keys."""
    teams = AdminClient(gateway_url).get("/admin/teams")["data"]
    if as_json:
        print(json.dumps(teams, indent=2))
        return
    table = Table()
    table.add_column("team", no_wrap=True)
    table.add_column("keys", justify="right")
    for column in ("budget", "description"):
        table.add_column(column, overflow="fold")
    for team in teams:
        table.add_row(
            escape(team["name"]),
            str(team["keys"]),
            format_budget(team.get("budget")),
            escape(team.get("description") or ""),
        )
    console.print(table)


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="The team's name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the team as JSON.")] = False,
    gateway_url: GatewayUrl = None,
) -> None:
    """Show a team: its budget, its keys and what it spent in the last 30 days."""
    client = AdminClient(gateway_url)
    team = client.get(f"/admin/teams/{quote(name, safe='')}")
    spend = client.get("/admin/spend", params={"team": name, "since": "30d"})
    if as_json:
        print(json.dumps({**team, "spend_30d": spend["total"]}, indent=2))
        return
    console.print(f"[bold]{escape(team['name'])}[/bold] {escape(team.get('description') or '')}")
    console.print(f"keys: {team['keys']}   budget: {format_budget(team.get('budget'))}")
    total = spend["total"]
    console.print(f"spent in 30 days: {total['cost']} {spend['currency']} over {total['requests']} requests")


@app.command()
def budget(
    name: Annotated[str, typer.Argument(help="The team's name.")],
    budget_daily: BudgetDaily = None,
    budget_monthly: BudgetMonthly = None,
    gateway_url: GatewayUrl = None,
) -> None:
    """Set (replace) a team's budget; leave both out to remove it."""
    path = f"/admin/teams/{quote(name, safe='')}"
    team = AdminClient(gateway_url).request("PATCH", path, json={"budget": budget_body(budget_daily, budget_monthly)})
    console.print(f"Team {escape(team['name'])}: budget {format_budget(team.get('budget'))}.")
