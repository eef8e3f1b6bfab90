"""``llmops eval sets ...`` and ``llmops eval compare``: versioned eval sets and the offline gate before a canary."""

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmops_cli.client import AdminClient, fail
from llmops_cli.feedback import FeedbackUrl
from llmops_cli.keys import parse_duration

sets_app = typer.Typer(help="Eval sets: uploaded or built from feedback, versioned by content hash.")
console = Console()
AsJson = Annotated[bool, typer.Option("--json", help="Print the raw JSON.")]


def _client(feedback_url: str | None) -> AdminClient:
    return AdminClient(feedback_url, service="feedback", timeout_s=60.0)


@sets_app.command("create")
def create_set(
    name: Annotated[str, typer.Argument(help="The set's name; each distinct content is a new version of it.")],
    file: Annotated[Path | None, typer.Option("--file", help="JSONL: question, reference?, sources?, ...")] = None,
    from_feedback: Annotated[
        bool, typer.Option(help="Build it from rated requests (corrections as references).")
    ] = False,
    route: Annotated[str | None, typer.Option(help="With --from-feedback: only this route.")] = None,
    since: Annotated[str, typer.Option(help="With --from-feedback: how far back.")] = "30d",
    limit: Annotated[int, typer.Option(help="With --from-feedback: at most this many.")] = 500,
    feedback_url: FeedbackUrl = None,
) -> None:
    """Store a version of an eval set."""
    if (file is None) == (not from_feedback):
        fail("give --file or --from-feedback, exactly one")
    body: dict = {"name": name}
    if file is not None:
        try:
            body["items"] = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as exc:
            fail(f"cannot read {file}: {exc}")
    else:
        body["from_feedback"] = {"route": route, "since_s": parse_duration(since), "limit": limit}
    found = _client(feedback_url).post("/v1/evaluations/sets", body)
    console.print(f"eval set {found['name']} version {found['version']}: {found['size']} items ({found['origin']})")


@sets_app.command("list")
def list_sets(as_json: AsJson = False, feedback_url: FeedbackUrl = None) -> None:
    found = _client(feedback_url).get("/v1/evaluations/sets")
    if as_json:
        print(json.dumps(found, indent=2))
        return
    table = Table()
    for column in ("name", "version", "items", "origin", "created"):
        table.add_column(column)
    for s in found:
        table.add_row(s["name"], s["version"], str(s["size"]), s["origin"], s["created_at"])
    console.print(table)


@sets_app.command("export")
def export_set(
    name: str,
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSONL.")],
    version: Annotated[str, typer.Option(help="A version, or latest.")] = "latest",
    feedback_url: FeedbackUrl = None,
) -> None:
    with out.open("wb") as into:
        lines = _client(feedback_url).download(f"/v1/evaluations/sets/{name}/{version}.jsonl", params={}, into=into)
    console.print(f"{out}: {lines} items of eval set {name} ({version})")


def compare(
    champion: Annotated[str, typer.Option("--champion", help="The champion's gateway route.")],
    challenger: Annotated[str, typer.Option("--challenger", help="The challenger's gateway route.")],
    eval_set: Annotated[str | None, typer.Option("--set", help="An eval set (else --replay-route).")] = None,
    replay_route: Annotated[str | None, typer.Option(help="Replay this route's logged prompts instead.")] = None,
    since: Annotated[str, typer.Option(help="With --replay-route: how far back.")] = "24h",
    sample: Annotated[int, typer.Option(help="With --replay-route: at most this many prompts.")] = 100,
    rubric: Annotated[str, typer.Option(help="pairwise (LLM judge, positions swapped) or a rubric.")] = "pairwise",
    judge_route: Annotated[str | None, typer.Option(help="The judge's route (default: the service's).")] = None,
    margin: Annotated[float, typer.Option(help="Block when losses exceed wins by more than this share.")] = 0.05,
    model: Annotated[str | None, typer.Option(help="Registered model whose version gets the verdict as a tag.")] = None,
    model_version: Annotated[str | None, typer.Option(help="Its version.")] = None,
    as_json: AsJson = False,
    feedback_url: FeedbackUrl = None,
) -> None:
    """The offline gate: both routes answer, the judge compares; exits 2 when the challenger is blocked."""
    client = _client(feedback_url)
    body = {"champion_route": champion, "challenger_route": challenger, "rubric": rubric, "margin": margin,
            "judge_route": judge_route, "eval_set": eval_set, "model": model, "model_version": model_version}  # fmt: skip
    if replay_route:
        body["replay"] = {"route": replay_route, "since_s": parse_duration(since), "limit": sample}
    queued = client.post("/v1/evaluations/comparisons", {k: v for k, v in body.items() if v is not None})
    columns = (TextColumn("comparing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("comparing", total=queued["total"])
        while (found := client.get(f"/v1/evaluations/comparisons/{queued['id']}"))["status"] not in ("done", "failed"):
            progress.update(task, completed=found["done"])
            time.sleep(1.0)
    if found["status"] == "failed":
        fail(f"comparison {found['id']} failed: {found['reason']}")
    if as_json:
        print(json.dumps(found, indent=2, default=str))
    else:
        console.print(f"{found['id']}: {found['wins']} wins, {found['ties']} ties, {found['losses']} losses "
                      f"for the challenger; {found['tokens']} tokens")  # fmt: skip
        console.print(f"[bold]{found['verdict'].upper()}[/bold]: {found['reason']}")
        if found["mlflow_run_id"]:
            console.print(f"MLflow run {found['mlflow_run_id']} (experiment llmops-offline-gate)")
    if found["verdict"] == "block":
        raise typer.Exit(2)
