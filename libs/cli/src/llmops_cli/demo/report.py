"""The demo's report: what happened, in Markdown, and the thumbs-up rate per arm over time as a PNG."""

import json
import math
from pathlib import Path

from llmops_cli.demo import timeline

COLOURS = {"base": "tab:blue", "challenger": "tab:orange"}
PHASES = {"collect": "before training", "canary": "canary"}


def wilson(up: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = up / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def cumulative_rates(events: list[dict]) -> dict[tuple[str, str], list[tuple[float, float, float, float]]]:
    """Per (phase, arm): (time, cumulative thumbs-up rate, Wilson low, high) after each of its ratings. Phases
    apart: before training users ask the training phrasings, in the canary held-out ones."""
    counts: dict[str, list[int]] = {}
    series: dict[str, list[tuple[float, float, float, float]]] = {}
    for event in events:
        if event["kind"] != "rating":
            continue
        key = (event.get("phase", ""), event["arm"])
        up_n = counts.setdefault(key, [0, 0])
        up_n[0] += event["rating"] == "up"
        up_n[1] += 1
        low, high = wilson(*up_n)
        series.setdefault(key, []).append((event["t"], up_n[0] / up_n[1], low, high))
    return series


def plot(events: list[dict], path: Path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for (phase, arm), points in cumulative_rates(events).items():
        t, rate, low, high = zip(*points, strict=True)
        colour = COLOURS.get(arm)
        style = ":" if phase == "collect" else "-"
        ax.plot(t, rate, style, label=f"{arm}, {PHASES.get(phase, phase)}", color=colour, linewidth=2)
        ax.fill_between(t, low, high, alpha=0.15, color=colour)
    marks = {"job_started": "training starts", "experiment_started": "canary starts"}
    for event in events:
        if event["kind"] in marks:
            label = marks[event["kind"]]
        elif event["kind"] == "decision" and event["action"] != "start":
            label = event["action"]
        else:
            continue
        ax.axvline(event["t"], color="grey", linestyle="--", linewidth=1)
        ax.text(event["t"], 1.08, f" {label}", rotation=90, va="top", ha="right", fontsize=9)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("seconds since the demo started")
    ax.set_ylabel("cumulative thumbs-up rate (95% Wilson band)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out: Path, *, events: list[dict], answers: list[dict], summary: dict) -> tuple[Path, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    experiment = summary["experiment"]
    outcome = experiment["status"].replace("_", " ")
    png = out / "report.png"
    plot(events, png, title=f"{summary['route']}: challenger {outcome} ({summary['mode']} feedback)")
    lines = [
        f"# The closed loop on {summary['route']}: the challenger was {outcome}",
        "",
        f"Mode: {summary['mode']} feedback; {summary['items']} questions per round; {summary['seconds']:.0f} s in all.",
        "",
        "![thumbs-up rate per arm](report.png)",
        "",
        "## What happened",
        "",
    ]
    for event in events:
        if event["kind"] == "job_started":
            lines.append(f"- {event['t']:.0f} s: the retraining policy started job {event['job_id']} "
                         f"on {event['examples']} training examples from the feedback")  # fmt: skip
        elif event["kind"] == "experiment_started":
            lines.append(f"- {event['t']:.0f} s: the adapter is served; experiment {event['experiment_id']} opened")
        elif event["kind"] == "decision":
            lines.append(f"- {event['t']:.0f} s: **{event['action']}** by {event['actor']}: {event['reason']}")
    phases = timeline.report_lines(events)
    if phases:
        lines += ["", "## Where the retraining time went", "", *phases]
    lines += [
        "",
        "## The arms",
        "",
        "| arm | variant | version | requests | rated | thumbs up | rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in experiment["readout"]["arms"]:
        rate = "-" if arm["up_rate"] is None else f"{arm['up_rate']:.0%}"
        lines.append(f"| {arm['arm']} | {arm['variant']} | {arm['version'] or '-'} | {arm['exposures']} | "
                     f"{arm['ratings']} | {arm['thumbs_up']} | {rate} |")  # fmt: skip
    lines += ["", "## Answers to the same held-out question, per arm", ""]
    lines += _examples(answers)
    final = next((d for d in reversed(experiment["decisions"]) if d["action"] != "start"), None)
    if final:
        lines += [
            "",
            "## The decision's evidence",
            "",
            "```json",
            json.dumps(final["evidence"], indent=2)[:6000],
            "```",
        ]
    md = out / "report.md"
    md.write_text("\n".join(lines) + "\n")
    return md, png


def _examples(answers: list[dict], limit: int = 5) -> list[str]:
    """Held-out questions that both arms answered: what each said, and its rating."""
    canary = [a for a in answers if a["phase"] == "canary"]
    by_item: dict[str, dict[str, dict]] = {}
    for answer in canary:
        by_item.setdefault(answer["item"], {}).setdefault(answer["arm"], answer)
    lines = []
    for arms in [a for a in by_item.values() if len(a) > 1][:limit]:
        question = next(iter(arms.values()))["question"]
        lines.append(f"**{question}**")
        for arm, answer in sorted(arms.items()):
            text = answer["answer"].replace("\n", " ").strip()[:200]
            lines.append(f"- {arm} ({answer['rating']}): {text}")
        lines.append("")
    return lines or ["(no question was answered by both arms)"]
