"""``llmops routes list|put|delete``: routes (the ``model`` a client asks for) and their weighted variants."""

import json
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmops_cli.client import AdminClient, GatewayUrl, fail

app = typer.Typer(help="List, create/replace and delete routes.", no_args_is_help=True)
console = Console()


def parse_variant(text: str) -> dict:
    """``name=a,upstream=http://host:port/v1,model=m,weight=90`` -> a variant object.

    Keys other than these four (e.g. ``api_key_env``) pass through as strings for the gateway to validate.
    """
    variant: dict = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value pairs separated by commas; got {part!r} in {text!r}")
        variant[key] = value
    missing = [k for k in ("name", "upstream", "model") if not variant.get(k)]
    if missing:
        raise typer.BadParameter(f"variant {text!r} lacks {', '.join(missing)}")
    if "weight" in variant:
        try:
            weight = float(variant["weight"])
        except ValueError:
            raise typer.BadParameter(f"weight must be a number; got {variant['weight']!r}") from None
        variant["weight"] = int(weight) if weight.is_integer() else weight
    return variant


@app.command("list")
def list_routes(
    as_json: Annotated[bool, typer.Option("--json", help="Print the routes as JSON.")] = False,
    gateway_url: GatewayUrl = None,
) -> None:
    """List routes with their variants, weights and fallbacks."""
    routes = AdminClient(gateway_url).get("/admin/routes")["data"]
    if as_json:
        print(json.dumps(routes, indent=2))
        return
    table = Table()
    table.add_column("route", no_wrap=True)
    for column in ("variants (weight: upstream, model)", "sticky", "fallbacks"):
        table.add_column(column, overflow="fold")
    for route in routes:
        variants = "\n".join(
            f"{v['name']} ({v.get('weight', 1):g}): {v.get('upstream')}, {v.get('model')}"
            for v in route.get("variants", [])
        )
        # A fallback is a variant name of this route or a whole variant object (e.g. another upstream).
        fallbacks = ", ".join(
            f if isinstance(f, str) else f"{f.get('name')} ({f.get('upstream')})" for f in route.get("fallbacks") or []
        )
        cells = (route["name"], variants, "yes" if route.get("sticky") else "no", fallbacks)
        table.add_row(*map(escape, cells))
    console.print(table)


@app.command()
def put(
    name: Annotated[str, typer.Argument(help="The route: the model name clients ask for.")],
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            metavar="name=..,upstream=..,model=..,weight=..",
            help="A weighted variant; repeatable. upstream is an OpenAI-compatible base URL (…/v1).",
        ),
    ] = None,
    sticky: Annotated[
        bool | None,
        typer.Option(
            "--sticky/--no-sticky",
            help="Keep each user (or key) on one variant. Default: sticky.",
        ),
    ] = None,
    fallback: Annotated[
        list[str] | None,
        typer.Option(
            "--fallback",
            metavar="VARIANT",
            help="A variant to try when the chosen one fails; repeatable, in order.",
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            exists=True,
            dir_okay=False,
            help="A JSON route spec; the other options override its fields.",
        ),
    ] = None,
    gateway_url: GatewayUrl = None,
) -> None:
    """Create or replace a route. Weight changes apply without a restart."""
    spec: dict = {"sticky": True, "fallbacks": []}
    if file is not None:
        try:
            spec.update(json.loads(file.read_text()))
        except ValueError as exc:
            fail(f"{file}: not valid JSON ({exc})")
    if variant:
        spec["variants"] = [parse_variant(v) for v in variant]
    if sticky is not None:
        spec["sticky"] = sticky
    if fallback:
        spec["fallbacks"] = fallback
    for field in ("name", "updated_at"):  # as `routes list --json` prints them; the name is the path
        spec.pop(field, None)
    if not spec.get("variants"):
        fail("a route needs at least one variant (--variant or --file)")
    AdminClient(gateway_url).put(f"/admin/routes/{quote(name, safe='')}", spec)
    console.print(f"Route {name} saved with {len(spec['variants'])} variant(s).")


@app.command()
def delete(
    name: Annotated[str, typer.Argument(help="The route to delete.")],
    gateway_url: GatewayUrl = None,
) -> None:
    """Delete a route."""
    AdminClient(gateway_url).delete(f"/admin/routes/{quote(name, safe='')}")
    console.print(f"Route {name} deleted.")
