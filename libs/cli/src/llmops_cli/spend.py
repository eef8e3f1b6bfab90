"""``llmops spend`` (what was spent, grouped) and ``llmops prices set|list|history`` (what variants cost)."""

import json
from decimal import Decimal
from typing import Annotated
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmops_cli.client import AdminClient, GatewayUrl
from llmops_cli.teams import decimal_text

prices_app = typer.Typer(help="Set and list variants' prices (per million tokens).", no_args_is_help=True)
console = Console()

_BY = ("route", "variant", "key", "team", "prompt_version")


def spend(
    team: Annotated[str | None, typer.Option(help="Only this team's keys.")] = None,
    key: Annotated[str | None, typer.Option(help="Only this key (its id).")] = None,
    since: Annotated[str, typer.Option(help="How far back: 30d, 12h, 2w, or an ISO time.")] = "30d",
    by: Annotated[str | None, typer.Option(help="Group by route, variant, key, team or prompt_version.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    gateway_url: GatewayUrl = None,
) -> None:
    """What requests cost, at the price each was charged (spend is summed per hour)."""
    if by is not None and by not in _BY:
        raise typer.BadParameter(f"--by takes one of {', '.join(_BY)}; got {by!r}")
    params = {k: v for k, v in {"team": team, "key": key, "since": since, "by": by}.items() if v is not None}
    report = AdminClient(gateway_url).get("/admin/spend", params=params)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"spend since {report['since']} ({report['currency']})")
    table.add_column(by or "", overflow="fold")
    for column in ("requests", "prompt", "completion", "cost"):
        table.add_column(column, justify="right", no_wrap=True)
    for group in [*report["groups"], report["total"]]:
        table.add_row(
            escape(group["group"]),
            str(group["requests"]),
            str(group["prompt_tokens"]),
            str(group["completion_tokens"]),
            str(group["cost"]),
            end_section=group is report["groups"][-1] if report["groups"] else False,
        )
    console.print(table)


def _price_table(prices: list[dict]) -> Table:
    table = Table(title="per million tokens")
    table.add_column("variant", overflow="fold")
    for column in ("input", "cached", "output", "version"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("derived from", overflow="fold")
    for price in prices:
        cached = price.get("cached_input_per_mtok")
        derived = price.get("derived_from")
        table.add_row(
            escape(price["variant"]),
            str(price["input_per_mtok"]),
            "as input" if cached is None else str(cached),
            str(price["output_per_mtok"]),
            str(price["id"]),
            f"{derived['gpu_hour_cost']}/GPU-hour, {derived['tokens_per_s']} tok/s" if derived else "",
        )
    return table


@prices_app.command("set")
def set_price(
    variant: Annotated[str, typer.Argument(help="The variant's name (as routes name it).")],
    input_price: Annotated[
        Decimal | None, typer.Option("--input", min=0, help="Price per million prompt tokens.")
    ] = None,
    output_price: Annotated[
        Decimal | None, typer.Option("--output", min=0, help="Price per million completion tokens.")
    ] = None,
    cached_price: Annotated[
        Decimal | None, typer.Option("--cached-input", min=0, help="Price per million cached prompt tokens.")
    ] = None,
    gpu_hour: Annotated[
        Decimal | None, typer.Option("--gpu-hour", help="Self-hosted: what an hour of the GPU costs...")
    ] = None,
    tokens_per_s: Annotated[
        Decimal | None, typer.Option("--tokens-per-s", help="...and the tokens/s it serves (your measurement).")
    ] = None,
    gateway_url: GatewayUrl = None,
) -> None:
    """Set a variant's price (a new version: spend already recorded keeps its price). With --gpu-hour and
    --tokens-per-s the gateway derives the price per million tokens and keeps both figures with it."""
    if gpu_hour is not None or tokens_per_s is not None:
        if gpu_hour is None or tokens_per_s is None or input_price is not None or output_price is not None:
            raise typer.BadParameter("give --gpu-hour with --tokens-per-s, or --input and --output")
        body = {"gpu_hour_cost": decimal_text(gpu_hour), "tokens_per_s": decimal_text(tokens_per_s)}
    elif input_price is None or output_price is None:
        raise typer.BadParameter("give --input and --output (per million tokens), or --gpu-hour and --tokens-per-s")
    else:
        body = {"input_per_mtok": decimal_text(input_price), "output_per_mtok": decimal_text(output_price)}
    if cached_price is not None:
        body["cached_input_per_mtok"] = decimal_text(cached_price)
    price = AdminClient(gateway_url).put(f"/admin/prices/{quote(variant, safe='')}", body)
    console.print(
        f"Variant {escape(variant)}: input {price['input_per_mtok']}, output {price['output_per_mtok']} "
        f"per million tokens (version {price['id']})."
    )


@prices_app.command("list")
def list_prices(
    as_json: Annotated[bool, typer.Option("--json", help="Print the prices as JSON.")] = False,
    gateway_url: GatewayUrl = None,
) -> None:
    """Each variant's current price."""
    prices = AdminClient(gateway_url).get("/admin/prices")["data"]
    if as_json:
        print(json.dumps(prices, indent=2))
        return
    console.print(_price_table(prices))


@prices_app.command()
def history(
    variant: Annotated[str, typer.Argument(help="The variant's name.")],
    gateway_url: GatewayUrl = None,
) -> None:
    """Every version of a variant's price, newest first."""
    console.print(_price_table(AdminClient(gateway_url).get(f"/admin/prices/{quote(variant, safe='')}")["data"]))
