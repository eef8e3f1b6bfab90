"""Eval sets and offline comparisons (the gate before a canary)."""

import asyncio
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import Response
from kombu.exceptions import OperationalError
from pydantic import BaseModel, ConfigDict, Field

from llmops_common.errors import ERROR_RESPONSES, APIError
from llmops_common.sql import utcnow
from llmops_feedback.deps import AdminDep, SessionDep, StateDep
from llmops_feedback.evaluation import compare, comparisons, rubrics, sets
from llmops_feedback.evaluation.queue import dispatch_comparison
from llmops_feedback.evaluation.schemas import EvalItem, EvalSetIn, EvalSetPublic, FromFeedback
from llmops_feedback.platform import PlatformError, unavailable

router = APIRouter(prefix="/v1/evaluations", tags=["evaluation"], responses=ERROR_RESPONSES)


@router.post("/sets", status_code=201)
async def create_set(body: EvalSetIn, _: AdminDep, session: SessionDep) -> EvalSetPublic:
    """Stores a version of the set (the same items are the same version: stored once)."""
    if (body.items is None) == (body.from_feedback is None):
        raise APIError(422, "give items or from_feedback, exactly one", code="invalid_eval_set")
    if body.items is not None:
        found, _new = await sets.create(session, name=body.name, items=body.items, origin="upload")
    else:
        source = body.from_feedback
        since = utcnow() - timedelta(seconds=source.since_s)
        items = await sets.from_feedback(session, route=source.route, since=since, limit=source.limit)
        found, _new = await sets.create(session, name=body.name, items=items, origin="feedback")
    return EvalSetPublic.model_validate(found)


@router.get("/sets")
async def list_sets(_: AdminDep, session: SessionDep) -> list[EvalSetPublic]:
    return [EvalSetPublic.model_validate(s) for s in await sets.list_all(session)]


@router.get("/sets/{name}/{version}.jsonl")
async def export_set(name: str, version: str, _: AdminDep, session: SessionDep) -> Response:
    """The set as JSONL (``latest`` for the newest version); its sha256 begins with the version."""
    found = await sets.get(session, name=name, version=version)
    body = sets.jsonl([EvalItem(**i) for i in found.items])
    headers = {"x-llmops-eval-set-version": found.version}
    return Response(body, media_type="application/x-ndjson", headers=headers)


class ComparisonIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

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


@router.post("/comparisons", status_code=202)
async def create_comparison(body: ComparisonIn, _: AdminDep, state: StateDep, session: SessionDep) -> dict:
    """Queues the offline gate: both routes answer every item, the judge compares, the verdict and the per-row table
    are stored here and logged to MLflow (and tagged on ``model``/``model_version``)."""
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
    return _public(row)


def _public(row, *, with_rows: bool = False) -> dict:
    out = {k: getattr(row, k) for k in ("id", "status", "total", "done", "wins", "ties", "losses", "verdict", "reason",
                                          "mlflow_run_id", "tokens", "created_at", "updated_at")}  # fmt: skip
    out["spec"] = {k: v for k, v in row.spec.items() if k != "items"}
    if with_rows:
        out["rows"] = row.rows
    return out


@router.get("/comparisons")
async def list_comparisons(_: AdminDep, session: SessionDep) -> list[dict]:
    return [_public(r) for r in await comparisons.list_recent(session)]


@router.get("/comparisons/{comparison_id}")
async def get_comparison(comparison_id: str, _: AdminDep, session: SessionDep) -> dict:
    return _public(await comparisons.get(session, comparison_id=comparison_id), with_rows=True)
