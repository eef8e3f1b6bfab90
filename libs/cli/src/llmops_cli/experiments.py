"""``llmops experiments create|list|show|promote|rollback|stop``: champion against challenger on a route."""

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmops_cli.client import AdminClient
from llmops_cli.feedback import FeedbackUrl
from llmops_cli.keys import parse_duration

app = typer.Typer(help="Experiments: a challenger canaried against the champion, decided by evidence.")
console = Console()
AsJson = Annotated[bool, typer.Option("--json", help="Print the raw JSON.")]
ExperimentId = Annotated[str, typer.Argument(help="The experiment's id (exp_...).")]


def _client(feedback_url: str | None) -> AdminClient:
    return AdminClient(feedback_url, service="feedback")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


@app.command()
def create(
    route: Annotated[str, typer.Argument(help="The gateway route to split.")],
    champion: Annotated[str, typer.Option(help="The route's variant serving today.")],
    challenger: Annotated[str, typer.Option(help="The route's variant under test.")],
    steps: Annotated[str | None, typer.Option(help="Challenger shares, e.g. 0.05,0.25,0.5.")] = None,
    alpha: Annotated[float | None, typer.Option(help="False-decision rate of the test.")] = None,
    min_ratings: Annotated[int | None, typer.Option(help="Ratings per arm before any verdict.")] = None,
    mde: Annotated[float | None, typer.Option(help="Smallest difference of the primary metric worth finding.")] = None,
    max_duration: Annotated[str | None, typer.Option(help="Keep the champion after this long: 7d, 12h.")] = None,
    min_step: Annotated[str | None, typer.Option(help="Least time on a step before ramping: 1h, 30m.")] = None,
    primary_metric: Annotated[
        str | None, typer.Option(help="What decides: thumbs_up (default) or judge_score (needs --judge-rubric).")
    ] = None,
    judge_rubric: Annotated[
        str | None, typer.Option(help="The rubric whose scores judge_score (and a judge guardrail) reads.")
    ] = None,
    feedback_url: FeedbackUrl = None,
) -> None:
    """Open an experiment: the challenger gets the first step's share at once."""
    policy: dict = {}
    if steps:
        try:
            policy["steps"] = [float(s) for s in steps.split(",")]
        except ValueError:
            raise typer.BadParameter(f"steps must be numbers separated by commas; got {steps!r}") from None
    fields = (("alpha", alpha), ("min_ratings_per_arm", min_ratings), ("min_detectable_effect", mde),
              ("primary_metric", primary_metric), ("judge_rubric", judge_rubric))  # fmt: skip
    for field, value in fields:
        if value is not None:
            policy[field] = value
    if max_duration:
        policy["max_duration_s"] = parse_duration(max_duration)
    if min_step:
        policy["min_step_duration_s"] = parse_duration(min_step)
    body = {"route": route, "champion": champion, "challenger": challenger, "policy": policy}
    experiment = _client(feedback_url).post("/v1/experiments", body)
    console.print(f"experiment {experiment['id']} on {route}: {challenger} at {_percent(experiment['share'])}")


@app.command("list")
def list_experiments(
    route: Annotated[str | None, typer.Option(help="Only this route.")] = None,
    status: Annotated[str | None, typer.Option(help="running, halted, promoted, rolled_back, kept, stopped.")] = None,
    as_json: AsJson = False,
    feedback_url: FeedbackUrl = None,
) -> None:
    """Experiments, newest first."""
    params = {k: v for k, v in {"route": route, "status": status}.items() if v}
    experiments = _client(feedback_url).get("/v1/experiments", params=params)["data"]
    if as_json:
        print(json.dumps(experiments, indent=2))
        return
    if not experiments:
        console.print("no experiments")
        return
    table = Table()
    for column in ("id", "route", "champion → challenger", "share", "status"):
        table.add_column(column, overflow="fold")
    for e in experiments:
        table.add_row(e["id"], e["route"], f"{e['champion']} → {e['challenger']}", _percent(e["share"]), e["status"])
    console.print(table)


@app.command()
def show(experiment_id: ExperimentId, as_json: AsJson = False, feedback_url: FeedbackUrl = None) -> None:
    """The readout per arm, what the controller would do now, and the decisions taken."""
    e = _client(feedback_url).get(f"/v1/experiments/{experiment_id}")
    if as_json:
        print(json.dumps(e, indent=2))
        return
    console.print(
        f"[bold]{e['id']}[/bold] on {e['route']}: {e['status']}, challenger share {_percent(e['share'])} "
        f"(step {e['step_index'] + 1} of {len(e['steps'])})"
    )
    judged = e["readout"].get("primary_metric") == "judge_score"
    title = f"readout (primary metric: {e['readout']['judge_rubric']} judge score)" if judged else "readout"
    table = Table(title=title)
    scores = ("scored", "judge score", "95% CI ") if judged else ()
    for column in ("arm", "version", "requests", "rated", "up rate", "95% CI", *scores, "errors"):
        table.add_column(column, justify="right" if column not in ("arm", "version") else "left")
    for arm in e["readout"]["arms"]:
        interval = "-" if arm["up_rate"] is None else f"{_percent(arm['up_rate_low'])}–{_percent(arm['up_rate_high'])}"
        judge = ()
        if judged:
            mean = arm.get("judge_score")
            low_high = "-" if mean is None else f"{arm['judge_score_low']:.3f}–{arm['judge_score_high']:.3f}"
            judge = (str(arm.get("judge_scores", 0)), "-" if mean is None else f"{mean:.3f}", low_high)
        table.add_row(
            f"{arm['arm']}\n{arm['variant']}",
            arm["version"] or "-",
            str(arm["exposures"]),
            str(arm["ratings"]),
            _percent(arm["up_rate"]),
            interval,
            *judge,
            _percent(arm["error_rate"]),
        )
    console.print(table)
    upcoming = e["readout"]["next"]
    if upcoming:
        console.print(f"controller now: [bold]{upcoming['action']}[/bold]: {upcoming['reason']}")
    for d in e["decisions"]:
        applied = "" if d["applied"] else f" [red](not applied yet: {d['apply_error'] or 'pending'})[/red]"
        console.print(f"{d['created_at'][:19]} {d['action']} by {d['actor']}: {d['reason']}{applied}")


def _decide(what: str, experiment_id: str, feedback_url: str | None) -> None:
    e = _client(feedback_url).post(f"/v1/experiments/{experiment_id}/{what}", {})
    console.print(f"{e['id']}: {e['status']}, challenger share {_percent(e['share'])}")


@app.command()
def promote(experiment_id: ExperimentId, feedback_url: FeedbackUrl = None) -> None:
    """Promote the challenger now (recorded with the evidence of the moment)."""
    _decide("promote", experiment_id, feedback_url)


@app.command()
def rollback(experiment_id: ExperimentId, feedback_url: FeedbackUrl = None) -> None:
    """Take the challenger out; after a promotion, move the champion alias back."""
    _decide("rollback", experiment_id, feedback_url)


@app.command()
def stop(experiment_id: ExperimentId, feedback_url: FeedbackUrl = None) -> None:
    """End the experiment without a verdict; the champion keeps all traffic."""
    _decide("stop", experiment_id, feedback_url)
