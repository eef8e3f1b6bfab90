"""Queuing an offline gate (a comparison of two routes' answers), one path for whoever asks: an admin through
``POST /v1/evaluations/comparisons`` (``llmops eval compare``) or the retraining loop before it opens a canary. The
request is checked (rubric, routes, judge, items) and stored before it is queued, and an evaluation worker runs it
(``comparisons.run``): never on a request path."""

import asyncio
from datetime import timedelta

from kombu.exceptions import OperationalError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.errors import APIError
from llmops_common.openapi import given
from llmops_common.sql import utcnow
from llmops_feedback.evaluation import compare, comparisons, rubrics, sets
from llmops_feedback.evaluation.models import Comparison
from llmops_feedback.evaluation.queue import dispatch_comparison
from llmops_feedback.evaluation.schemas import FromFeedback
from llmops_feedback.platform import PlatformError, unavailable
from llmops_feedback.state import FeedbackState


class ComparisonIn(BaseModel):
    # eval_set or replay, exactly one: in the document too (queue checks it, answering invalid_comparison).
    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"oneOf": [given(["eval_set"], absent=["replay"]), given(["replay"], absent=["eval_set"])]},
    )

    champion_route: str = Field(min_length=1, max_length=128)
    challenger_route: str = Field(min_length=1, max_length=128)
    rubric: str = Field(default=compare.PAIRWISE, description="pairwise (an LLM judge, positions swapped) or a rubric")
    judge_route: str | None = Field(default=None, max_length=128)
    eval_set: str | None = Field(default=None, max_length=128)
    eval_set_version: str = Field(default="latest", max_length=16)
    replay: FromFeedback | None = Field(default=None, description="recently logged prompts instead of a set")
    margin: float = Field(default=0.05, ge=0, le=1, description="block when losses exceed wins by more than this")
    max_tokens: int = Field(default=128, ge=1, le=4096)
    model: str | None = Field(default=None, max_length=256, description="registered model to tag with the verdict")
    model_version: str | None = Field(default=None, max_length=64)


async def queue(session: AsyncSession, *, body: ComparisonIn, state: FeedbackState) -> Comparison:
    """Checks the comparison, stores it (committed) and queues it for an evaluation worker."""
    rubric = None if body.rubric == compare.PAIRWISE else rubrics.get(body.rubric)
    if body.rubric != compare.PAIRWISE and rubric is None:
        raise APIError(404, f"unknown rubric {body.rubric!r}", code="rubric_not_found", param="rubric")
    judge_route = body.judge_route or state.settings.eval_judge_route
    needs_judge = rubric is None or rubric.kind == "judge"
    if needs_judge and not judge_route:
        raise APIError(422, "this comparison needs judge_route (or FEEDBACK_EVAL_JUDGE_ROUTE)", code="no_judge_route")
    if (body.eval_set is None) == (body.replay is None):
        raise APIError(422, "give eval_set or replay, exactly one", code="invalid_comparison")
    if state.celery is None:
        raise APIError(503, "evaluation is not configured (FEEDBACK_EVAL_REDIS_URL)", code="evaluation_unavailable")
    routes = [("champion_route", body.champion_route), ("challenger_route", body.challenger_route)]
    if needs_judge:
        routes.append(("judge_route", judge_route))
    try:
        for field, name in routes:
            if await state.routes.get(name) is None:
                raise APIError(404, f"route {name!r} not found", code="route_not_found", param=field)
    except PlatformError as exc:
        raise unavailable(exc) from None
    if body.eval_set is not None:
        found = await sets.get(session, name=body.eval_set, version=body.eval_set_version)
        items, set_label = found.items, f"{found.name}@{found.version}"
    else:
        since = utcnow() - timedelta(seconds=body.replay.since_s)
        items = await sets.replayed(session, route=body.replay.route, since=since, limit=body.replay.limit)
        set_label = None
    if not items:
        raise APIError(422, "nothing to compare: the set or the replay window holds no question", code="no_items")
    if rubric is not None and rubric.needs.value == "reference" and not any(i.get("reference") for i in items):
        raise APIError(422, f"{rubric.key} needs references; these items have none", code="no_references")
    spec = body.model_dump(exclude={"eval_set_version", "replay"}) | {
        "judge_route": judge_route if needs_judge else None, "eval_set": set_label, "items": items,
    }  # fmt: skip
    row = await comparisons.create(session, spec=spec)
    # Committed before it is queued: a worker that takes the message at once must find the row.
    await session.commit()
    try:
        await asyncio.to_thread(dispatch_comparison, state.celery, queue=state.settings.eval_queue,
                                comparison_id=row.id)  # fmt: skip
    except (OperationalError, OSError) as exc:
        await session.delete(row)  # never queued: nothing would ever run it
        await session.commit()
        raise APIError(503, f"evaluation queue unavailable: {exc!r}", code="evaluation_unavailable") from None
    return row
