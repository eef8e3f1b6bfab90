from datetime import timedelta

from fastapi import APIRouter, Query
from kombu.exceptions import OperationalError
from sqlalchemy import select

from llmops_common.errors import ERROR_RESPONSES, APIError
from llmops_common.sql import utcnow
from llmops_feedback.deps import AdminDep, SessionDep, StateDep
from llmops_feedback.evaluation import rubrics, sampler, service
from llmops_feedback.evaluation.judge import Judgement
from llmops_feedback.evaluation.models import Score
from llmops_feedback.evaluation.schemas import (
    MAX_WINDOW_S,
    AgreementPublic,
    Report,
    RubricPublic,
    RunIn,
    RunOut,
    ScoreIn,
    ScorePublic,
    VariantScoresPublic,
)
from llmops_feedback.platform import PlatformError, unavailable
from llmops_feedback.records import service as records

router = APIRouter(prefix="/v1/evaluations", tags=["evaluation"], responses=ERROR_RESPONSES)


def _rubric(name: str) -> rubrics.Rubric:
    rubric = rubrics.get(name)
    if rubric is None:
        known = ", ".join(sorted(rubrics.RUBRICS))
        raise APIError(404, f"unknown rubric {name!r} (known: {known})", code="rubric_not_found", param="rubric")
    return rubric


def _public(rubric: rubrics.Rubric) -> RubricPublic:
    return RubricPublic(
        name=rubric.name, version=rubric.version, key=rubric.key, fingerprint=rubric.fingerprint, kind=rubric.kind,
        needs=rubric.needs.value, description=rubric.description, pass_at=rubric.pass_at,
    )  # fmt: skip


@router.get("/rubrics")
async def list_rubrics(_: AdminDep) -> list[RubricPublic]:
    return [_public(r) for r in rubrics.RUBRICS.values()]


@router.post("/runs", status_code=202)
async def run(body: RunIn, _: AdminDep, state: StateDep, session: SessionDep) -> RunOut:
    """Queues the route's newest answered requests for scoring; the workers store each score as they go."""
    rubric = _rubric(body.rubric)
    judge_route = (body.judge_route or state.settings.eval_judge_route) if rubric.kind == "judge" else None
    if rubric.kind == "judge" and not judge_route:
        raise APIError(422, "a judge rubric needs judge_route (or FEEDBACK_EVAL_JUDGE_ROUTE)", code="no_judge_route",
                       param="judge_route")  # fmt: skip
    if state.celery is None:
        raise APIError(503, "evaluation is not configured (FEEDBACK_EVAL_REDIS_URL)", code="evaluation_unavailable")
    if judge_route:
        try:
            if await state.routes.get(judge_route) is None:
                raise APIError(404, f"judge route {judge_route!r} not found", code="route_not_found",
                               param="judge_route")  # fmt: skip
        except PlatformError as exc:
            raise unavailable(exc) from None
    await _require_route(state, session, body.route)
    scorer = service.judge_scorer(judge_route) if judge_route else service.DETERMINISTIC
    since = utcnow() - timedelta(seconds=body.since_s)
    ids = await service.candidates(session, rubric=rubric, scorer=scorer, since=since, route=body.route,
                                   limit=body.sample)  # fmt: skip
    try:
        sent = await sampler.send(state, state.celery, request_ids=ids, rubric=rubric, judge_route=judge_route,
                                  origin="api")  # fmt: skip
    except (OperationalError, OSError) as exc:  # the broker is down
        raise APIError(503, f"evaluation queue unavailable: {exc!r}", code="evaluation_unavailable") from None
    return RunOut(rubric=rubric.key, scorer=scorer, queued=len(sent), request_ids=sent)


async def _require_route(state: StateDep, session: SessionDep, route: str) -> None:
    """A route is known when the request log holds requests of it (a route since deleted from the gateway still has
    answers to score) or the gateway has it (none logged yet: nothing to queue, but no typo either)."""
    if await service.route_logged(session, route=route):
        return
    try:
        if state.routes.configured and await state.routes.get(route) is not None:
            return
    except PlatformError as exc:
        raise unavailable(exc) from None
    raise APIError(404, f"route {route!r} not found: no request of it in the request log, nor a gateway route",
                   code="route_not_found", param="route")  # fmt: skip


@router.post("/scores", status_code=201)
async def add_score(body: ScoreIn, _: AdminDep, session: SessionDep) -> ScorePublic:
    """Stores a score made elsewhere; scoring the same request with the same rubric and scorer again replaces it."""
    rubric = _rubric(body.rubric)
    await records.get(session, request_id=body.request_id)  # 404 request_not_found
    judgement = Judgement(body.score, None, body.rationale or "", 1, body.prompt_tokens, body.completion_tokens, True)
    await service.save(session, request_id=body.request_id, rubric=rubric, scorer=body.scorer, origin="api",
                       judgement=judgement, status="ok")  # fmt: skip
    await session.commit()
    return ScorePublic.model_validate(await _score_row(session, body.request_id, rubric, body.scorer))


async def _score_row(session: SessionDep, request_id: str, rubric: rubrics.Rubric, scorer: str) -> Score:
    query = select(Score).where(Score.request_id == request_id, Score.rubric == rubric.name,
                                Score.rubric_version == rubric.version, Score.scorer == scorer)  # fmt: skip
    return await session.scalar(query)


@router.get("/scores/{request_id}")
async def request_scores(request_id: str, _: AdminDep, session: SessionDep) -> list[ScorePublic]:
    await records.get(session, request_id=request_id)
    return [ScorePublic.model_validate(s) for s in await service.of_request(session, request_id=request_id)]


@router.get("/report")
async def report(
    _: AdminDep,
    session: SessionDep,
    rubric: str,
    scorer: str | None = None,
    route: str | None = None,
    since_s: float | None = Query(default=None, gt=0, le=MAX_WINDOW_S),
) -> Report:
    """Per variant: scores (mean, histogram, failed and skipped judgements, tokens) and, against the current human
    thumbs of the same requests, the scorer's agreement with people (Cohen's kappa, confusion matrix, n)."""
    found = _rubric(rubric)
    since = utcnow() - timedelta(seconds=since_s) if since_s else None
    filters = {"rubric": found, "scorer": scorer, "route": route, "since": since}
    variants = [
        VariantScoresPublic(
            **v.__dict__, tokens_per_judgement=v.tokens / (v.scored + v.failed) if v.scored + v.failed else None
        )
        for v in await service.summary(session, **filters)
    ]
    agreement = await service.agreement(session, **filters)
    return Report(rubric=found.key, scorer=scorer, route=route, variants=variants,
                  agreement=AgreementPublic(**agreement.to_dict()))  # fmt: skip
