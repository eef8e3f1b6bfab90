"""``llmops eval rubrics|run|report``: scorers and judges over logged requests, and how far they agree with people."""

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmops_cli.client import AdminClient
from llmops_cli.evaluation_gate import compare, sets_app
from llmops_cli.feedback import FeedbackUrl
from llmops_cli.keys import parse_duration

app = typer.Typer(help="Evaluation: LLM judges and deterministic scorers, and their agreement with human ratings.")
app.add_typer(sets_app, name="sets")
app.command("compare")(compare)
console = Console()
AsJson = Annotated[bool, typer.Option("--json", help="Print the raw JSON.")]
Rubric = Annotated[str, typer.Option("--rubric", help="correctness, groundedness, helpfulness, exact_match, ...")]
Route = Annotated[str | None, typer.Option("--route", help="Only requests of this gateway route.")]
Since = Annotated[str, typer.Option("--since", help="How far back: 24h, 7d, 30m ...")]


def _client(feedback_url: str | None) -> AdminClient:
    return AdminClient(feedback_url, service="feedback")


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


@app.command()
def rubrics(as_json: AsJson = False, feedback_url: FeedbackUrl = None) -> None:
    """The rubrics and their versions."""
    found = _client(feedback_url).get("/v1/evaluations/rubrics")
    if as_json:
        print(json.dumps(found, indent=2))
        return
    table = Table()
    for column in ("rubric", "kind", "needs", "fingerprint", "what it checks"):
        table.add_column(column, overflow="fold")
    for r in found:
        table.add_row(r["key"], r["kind"], r["needs"], r["fingerprint"], r["description"])
    console.print(table)


@app.command()
def run(
    route: Annotated[str, typer.Option("--route", help="Score this gateway route's logged requests.")],
    rubric: Rubric,
    since: Since = "24h",
    sample: Annotated[int, typer.Option("--sample", help="At most this many requests, newest first.")] = 100,
    judge_route: Annotated[str | None, typer.Option(help="The judge's route (default: the service's).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the workers, with a progress bar.")] = True,
    timeout: Annotated[str, typer.Option(help="Stop waiting after this long.")] = "1h",
    as_json: AsJson = False,
    feedback_url: FeedbackUrl = None,
) -> None:
    """Queue a route's recent requests for scoring on the evaluation workers, wait, then print the report."""
    client = _client(feedback_url)
    body = {"route": route, "rubric": rubric, "since_s": parse_duration(since), "sample": sample}
    if judge_route:
        body["judge_route"] = judge_route
    queued = client.post("/v1/evaluations/runs", body)
    params = {"rubric": rubric, "route": route, "scorer": queued["scorer"]}
    if wait and queued["queued"]:
        deadline = time.monotonic() + parse_duration(timeout)
        columns = (TextColumn(f"scoring {rubric}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=as_json) as progress:
            task = progress.add_task("scoring", total=queued["queued"])
            while time.monotonic() < deadline:
                waiting = sum(v["queued"] for v in client.get("/v1/evaluations/report", params=params)["variants"])
                progress.update(task, completed=max(0, queued["queued"] - waiting))
                if waiting == 0:
                    break
                time.sleep(1.0)
    elif not queued["queued"]:
        console.print(f"nothing new to score on {route} with {queued['rubric']} by {queued['scorer']}")
    _show(client.get("/v1/evaluations/report", params=params), as_json=as_json)


@app.command()
def report(
    rubric: Rubric,
    route: Route = None,
    scorer: Annotated[str | None, typer.Option(help="Only this scorer (judge:<route>, deterministic).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="How far back: 24h, 7d ...")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG: score distribution per variant, agreement.")] = None,
    as_json: AsJson = False,
    feedback_url: FeedbackUrl = None,
) -> None:
    """Per variant mean score, failed judgements and tokens; agreement with the human thumbs of the same requests."""
    params = {"rubric": rubric, "route": route, "scorer": scorer, "since_s": parse_duration(since) if since else None}
    found = _client(feedback_url).get("/v1/evaluations/report", params={k: v for k, v in params.items() if v})
    _show(found, as_json=as_json)
    if plot is not None:
        draw(found, plot)
        console.print(f"plot: {plot}")


def _show(found: dict, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(found, indent=2))
        return
    table = Table(title=f"{found['rubric']}" + (f" on {found['route']}" if found["route"] else ""))
    for column in ("route", "variant", "scorer", "scored", "mean", "failed", "skipped", "queued", "tokens/judgement"):
        table.add_column(column, overflow="fold")
    for v in found["variants"]:
        table.add_row(
            v["route"], v["variant"], v["scorer"], str(v["scored"]), _number(v["mean"]), str(v["failed"]),
            str(v["skipped"]), str(v["queued"]), _number(v["tokens_per_judgement"], 0),
        )  # fmt: skip
    console.print(table)
    a = found["agreement"]
    if a["n"]:
        c = a["confusion"]
        console.print(
            f"agreement with people on {a['n']} rated requests: kappa {_number(a['kappa'], 2)}, "
            f"raw agreement {_number(a['observed'], 2)} (chance {_number(a['expected'], 2)}); "
            f"people up: scorer pass {c['up']['up']}, fail {c['up']['down']}; "
            f"people down: scorer pass {c['down']['up']}, fail {c['down']['down']}"
        )
    console.print(a["trust"])


def draw(found: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (scores, confusion) = plt.subplots(1, 2, figsize=(11, 4))
    variants = found["variants"]
    width = 0.8 / max(1, len(variants))
    bins = ["0-0.2", "0.2-0.4", "0.4-0.6", "0.6-0.8", "0.8-1"]
    for i, v in enumerate(variants):
        total = sum(v["histogram"]) or 1
        xs = [b + i * width for b in range(5)]
        scores.bar(xs, [h / total for h in v["histogram"]], width, label=f"{v['variant']} ({v['scorer']}, n={total})")
    scores.set_xticks([b + 0.4 - width / 2 for b in range(5)], bins)
    scores.set_xlabel("score")
    scores.set_ylabel("share of scored requests")
    scores.set_title(f"{found['rubric']}: score distribution per variant")
    if variants:
        scores.legend(fontsize=8)
    a = found["agreement"]
    cells = [[a["confusion"][h][s] for s in ("up", "down")] for h in ("up", "down")]
    confusion.imshow(cells, cmap="Blues")
    for h in range(2):
        for s in range(2):
            confusion.text(s, h, str(cells[h][s]), ha="center", va="center")
    confusion.set_xticks([0, 1], ["scorer pass", "scorer fail"])
    confusion.set_yticks([0, 1], ["people up", "people down"])
    confusion.set_title(f"agreement: kappa {_number(a['kappa'], 2)}, n = {a['n']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
