"""``llmops retraining set|list|show|delete``: a route's feedback trains and canaries a challenger by itself."""

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmops_cli.client import AdminClient
from llmops_cli.feedback import FeedbackUrl
from llmops_cli.keys import parse_duration

app = typer.Typer(help="Retraining policies: when enough new feedback arrives, train a challenger and canary it.")
console = Console()
Route = Annotated[str, typer.Argument(help="The gateway route.")]


def _client(feedback_url: str | None) -> AdminClient:
    return AdminClient(feedback_url, service="feedback")


def _json_option(text: str | None, name: str) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint=name) from None
    if not isinstance(value, dict):
        raise typer.BadParameter("must be a JSON object", param_hint=name)
    return value


@app.command("set")
def set_policy(
    route: Route,
    model_name: Annotated[str, typer.Option("--model", help="Registered model the adapter goes into.")],
    champion: Annotated[str, typer.Option(help="The route's variant the challenger is tested against.")],
    challenger: Annotated[str, typer.Option(help="Variant name the adapter is served under.")] = "challenger",
    upstream: Annotated[
        str | None, typer.Option(help="Base URL serving the adapter (default: the champion's).")
    ] = None,
    min_examples: Annotated[int, typer.Option(help="New training examples that start a job.")] = 50,
    cooldown: Annotated[str, typer.Option(help="Least time between two jobs: 1h, 30m, 0s.")] = "1h",
    max_failures: Annotated[int, typer.Option(help="Failed jobs in a row before it stops.")] = 3,
    job: Annotated[
        str | None, typer.Option(help='Trainer job fields as JSON: {"training": {...}, "lora": {...}}.')
    ] = None,
    experiment: Annotated[str | None, typer.Option(help="The canary's experiment policy as JSON.")] = None,
    gate: Annotated[
        str | None,
        typer.Option(
            help='The offline gate before the canary as JSON: {"rubric": "pairwise", "replay": 50, "margin": 0.05} '
            'or {"rubric": "contains_reference", "eval_set": "NAME"}.'
        ),
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Store it without acting on it.")] = False,
    feedback_url: FeedbackUrl = None,
) -> None:
    """Create or replace a route's retraining policy (replacing also lets a stopped policy try again)."""
    body = {
        "model_name": model_name,
        "champion": champion,
        "challenger": challenger,
        "upstream": upstream,
        "min_examples": min_examples,
        "cooldown_s": 0 if cooldown.strip() in ("0", "0s") else parse_duration(cooldown),
        "max_failures": max_failures,
        "job": _json_option(job, "--job"),
        "experiment": _json_option(experiment, "--experiment"),
        "gate": _json_option(gate, "--gate") or None,
        "enabled": not disabled,
    }
    policy = _client(feedback_url).put(f"/v1/retraining/{route}", body)
    console.print(f"retraining on {route}: {policy['status']}")


@app.command("list")
def list_policies(
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
    feedback_url: FeedbackUrl = None,
) -> None:
    """Every route's policy and where it stands."""
    policies = _client(feedback_url).get("/v1/retraining")["data"]
    if as_json:
        print(json.dumps(policies, indent=2))
        return
    if not policies:
        console.print("no retraining policies")
        return
    table = Table()
    for column in ("route", "model", "min new", "last gate", "status"):
        table.add_column(column, overflow="fold")
    for p in policies:
        enabled = "" if p["enabled"] else " (disabled)"
        table.add_row(p["route"], p["model_name"], str(p["min_examples"]), _gate(p), (p["status"] or "-") + enabled)
    console.print(table)


def _gate(policy: dict) -> str:
    """The last offline gate: its verdict on which version, and the MLflow run it was logged to."""
    if policy.get("gate") is None:
        return "no gate"
    if policy.get("gate_comparison_id") is None:
        return "not run yet"
    verdict = (policy.get("gate_verdict") or "running").upper()
    run = f", MLflow run {policy['gate_run_id']}" if policy.get("gate_run_id") else ""
    return f"{verdict} on version {policy.get('registered_version') or '?'} ({policy['gate_comparison_id']}{run})"


@app.command()
def show(route: Route, feedback_url: FeedbackUrl = None) -> None:
    """One policy, as JSON (with the last offline gate's verdict, MLflow run and reason)."""
    print(json.dumps(_client(feedback_url).get(f"/v1/retraining/{route}"), indent=2))


@app.command()
def delete(route: Route, feedback_url: FeedbackUrl = None) -> None:
    """Stop retraining this route (its jobs and experiments stay)."""
    _client(feedback_url).delete(f"/v1/retraining/{route}")
    console.print(f"retraining policy of {route} deleted")
