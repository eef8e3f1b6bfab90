"""``llmops routes list|put|delete|history|revert|package``: routes (the ``model`` a client asks for) and their
weighted variants."""

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from llmops_cli.client import AdminClient, GatewayUrl, fail
from llmops_cli.prompts import MlflowUrl

app = typer.Typer(help="List, create/replace and delete routes; their history and reverts.", no_args_is_help=True)
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


@app.command()
def history(
    name: Annotated[str, typer.Argument(help="The route.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the revisions (whole specs) as JSON.")] = False,
    gateway_url: GatewayUrl = None,
) -> None:
    """Every change of a route, newest first: revision, when, who, what changed."""
    revisions = AdminClient(gateway_url).get(f"/admin/routes/{quote(name, safe='')}/revisions")["data"]
    if as_json:
        print(json.dumps(revisions, indent=2))
        return
    table = Table()
    table.add_column("rev", justify="right", no_wrap=True)
    table.add_column("when (UTC)", no_wrap=True)
    table.add_column("actor", overflow="fold", max_width=14)
    table.add_column("changes", overflow="fold")
    for r in revisions:
        # A creation or deletion lists every field: the action says it all (the spec is in --json).
        changes = r["changes"] if r["action"] in ("update", "revert") else [r["action"]]
        shown = changes[:6] + ([f"… {len(changes) - 6} more (--json)"] if len(changes) > 6 else [])
        when = r["at"][:19].replace("T", " ")
        table.add_row(str(r["revision"]), when, escape(r["actor"]), escape("\n".join(shown)))
    console.print(table)


@app.command()
def revert(
    name: Annotated[str, typer.Argument(help="The route.")],
    revision: Annotated[int, typer.Argument(help="The revision to bring back (llmops routes history NAME).")],
    gateway_url: GatewayUrl = None,
) -> None:
    """Give a route back the spec it had at REVISION (a new revision; a deleted route comes back)."""
    AdminClient(gateway_url).post(f"/admin/routes/{quote(name, safe='')}/revert", {"revision": revision})
    console.print(f"Route {name} reverted to revision {revision}.")


@app.command()
def package(
    name: Annotated[str, typer.Argument(help="The route.")],
    variant: Annotated[str | None, typer.Option(help="The variant (default: the one with the largest share).")] = None,
    experiment: Annotated[str, typer.Option(help="The MLflow experiment of the run.")] = "llmops-route-chains",
    registered_model: Annotated[
        str | None, typer.Option("--register", metavar="MODEL", help="Also register it as a version of MODEL.")
    ] = None,
    retriever_url: Annotated[
        str | None,
        typer.Option(envvar="LLMOPS_RETRIEVER_URL", help="The retriever the packaged chain searches (RAG routes)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    gateway_url: GatewayUrl = None,
    mlflow_url: MlflowUrl = None,
) -> None:
    """Log the route's chain (prompt versions, retrieval settings, model and its registry version) to MLflow as a
    pyfunc model that replays the call against any OpenAI-compatible endpoint."""
    from mlflow.exceptions import MlflowException

    from llmops_cli import packaging, prompt_registry

    route = AdminClient(gateway_url).get(f"/admin/routes/{quote(name, safe='')}")
    mlflow = prompt_registry.client(mlflow_url)
    try:
        chain = packaging.chain_of(mlflow, route, variant=variant, retriever_url=retriever_url)
        import mlflow as tracking

        tracking.set_tracking_uri(prompt_registry.tracking_uri(mlflow_url))
        with contextlib.redirect_stdout(sys.stderr):  # MLflow prints the run's URL on stdout, before our --json
            logged = packaging.log_chain(chain, experiment=experiment, registered_model=registered_model)
    except (ValueError, MlflowException) as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps({**logged, "chain": chain}, indent=2))
        return
    console.print(f"Route {escape(name)} ({escape(chain['variant'])}) logged as {escape(logged['model_uri'])}")
    if logged["registered_version"]:
        console.print(f"Registered as {escape(registered_model)} version {logged['registered_version']}")
