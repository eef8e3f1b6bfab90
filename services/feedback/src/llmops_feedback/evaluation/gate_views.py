"""Eval sets and offline comparisons (the gate before a canary)."""

from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import Response

from llmops_common.errors import ERROR_RESPONSES, APIError
from llmops_common.openapi import RESPONSE_ID, link, links, text_answer
from llmops_common.sql import utcnow
from llmops_feedback.deps import AdminDep, SessionDep, StateDep
from llmops_feedback.evaluation import comparisons, gate, sets
from llmops_feedback.evaluation.gate import ComparisonIn
from llmops_feedback.evaluation.schemas import EvalItem, EvalSetIn, EvalSetPublic

router = APIRouter(prefix="/v1/evaluations", tags=["evaluation"], responses=ERROR_RESPONSES)


@router.post(
    "/sets",
    status_code=201,
    openapi_extra=links(
        201,
        export=link(
            "get",
            "/v1/evaluations/sets/{name}/{version}.jsonl",
            name="$response.body#/name",
            version="$response.body#/version",
        ),
    ),
)
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


@router.get(
    "/sets/{name}/{version}.jsonl",
    response_class=Response,
    responses=text_answer("application/x-ndjson", "the set's items, one JSON object a line"),
)
async def export_set(name: str, version: str, _: AdminDep, session: SessionDep) -> Response:
    """The set as JSONL (``latest`` for the newest version); its sha256 begins with the version."""
    found = await sets.get(session, name=name, version=version)
    body = sets.jsonl([EvalItem(**i) for i in found.items])
    headers = {"x-llmops-eval-set-version": found.version}
    return Response(body, media_type="application/x-ndjson", headers=headers)


@router.post(
    "/comparisons",
    status_code=202,
    openapi_extra=links(
        202, read=link("get", "/v1/evaluations/comparisons/{comparison_id}", comparison_id=RESPONSE_ID)
    ),
)
async def create_comparison(body: ComparisonIn, _: AdminDep, state: StateDep, session: SessionDep) -> dict:
    """Queues the offline gate: both routes answer every item, the judge compares, the verdict and the per-row table
    are stored here and logged to MLflow (and tagged on ``model``/``model_version``)."""
    return _public(await gate.queue(session, body=body, state=state))


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
