"""``llmops feedback summary|export|rate``: quality by variant and training data, from the feedback service."""

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from llmops_cli.client import AdminClient
from llmops_cli.keys import parse_duration
from llmops_cli.quality_table import quality_table

app = typer.Typer(help="Quality by variant, ratings and datasets from the feedback service.", no_args_is_help=True)
console = Console()

FeedbackUrl = Annotated[
    str | None,
    typer.Option("--feedback-url", envvar="LLMOPS_FEEDBACK_URL", show_default="http://127.0.0.1:8004"),
]
Since = Annotated[str, typer.Option("--since", help="How far back: 24h, 7d, 30m ...")]


def _since(text: str) -> str:
    return (datetime.now(UTC) - timedelta(seconds=parse_duration(text))).isoformat()


@app.command()
def summary(
    route: Annotated[str | None, typer.Option(help="Only this route.")] = None,
    variant: Annotated[str | None, typer.Option(help="Only this variant.")] = None,
    since: Since = "24h",
    by_prompt: Annotated[bool, typer.Option("--by-prompt", help="A row per prompt name and version too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
    feedback_url: FeedbackUrl = None,
) -> None:
    """Requests, ratings and the thumbs-up rate (with its Wilson 95% interval) per route and variant; ``--json``
    has every field (time to first token, tokens in and out) whatever the terminal's width."""
    params = {k: v for k, v in {"route": route, "variant": variant, "since": _since(since)}.items() if v}
    if by_prompt:
        params["by_prompt"] = "true"
    body = AdminClient(feedback_url, service="feedback").get("/v1/quality", params=params)
    if as_json:
        print(json.dumps(body, indent=2))
        return
    if not body["variants"]:
        console.print("no requests in this window")
        return
    console.print(quality_table(body["variants"], title=f"Quality over the last {since}", width=console.width))


@app.command()
def export(
    kind: Annotated[Literal["sft", "preference"], typer.Argument(help="sft: chat examples; preference: pairs.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write ('-' for stdout).")],
    route: Annotated[str | None, typer.Option()] = None,
    variant: Annotated[str | None, typer.Option()] = None,
    since: Annotated[str | None, typer.Option(help="How far back (default: everything).")] = None,
    feedback_url: FeedbackUrl = None,
) -> None:
    """Training data as JSONL: thumbs-up answers and corrections (sft), or chosen/rejected pairs (preference)."""
    params = {k: v for k, v in {"route": route, "variant": variant}.items() if v}
    if since:
        params["since"] = _since(since)
    client = AdminClient(feedback_url, service="feedback", timeout_s=300)
    if str(out) == "-":
        client.download(f"/v1/datasets/{kind}", params=params, into=sys.stdout.buffer)
        return
    with out.open("wb") as f:
        lines = client.download(f"/v1/datasets/{kind}", params=params, into=f)
    console.print(f"wrote {lines} {kind} examples to {out}")


@app.command()
def rate(
    request_id: Annotated[str, typer.Argument(help="The x-request-id of the answer.")],
    rating: Annotated[Literal["up", "down"], typer.Argument()],
    comment: Annotated[str | None, typer.Option()] = None,
    correction: Annotated[str | None, typer.Option(help="A better answer (becomes training data).")] = None,
    feedback_url: FeedbackUrl = None,
) -> None:
    """Rate any logged request as an admin (clients rate their own through the gateway's /v1/feedback)."""
    body = {"request_id": request_id, "rating": rating, "comment": comment, "correction": correction}
    result = AdminClient(feedback_url, service="feedback").post(
        "/v1/feedback", {k: v for k, v in body.items() if v is not None}
    )
    console.print(f"rated {request_id}: {result['rating']}")
