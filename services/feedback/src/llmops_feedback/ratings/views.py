from fastapi import APIRouter
from fastapi.responses import JSONResponse

from llmops_common.errors import ERROR_RESPONSES
from llmops_common.openapi import link, links
from llmops_feedback.deps import RatedAtDep, RaterDep, SessionDep, StateDep
from llmops_feedback.ratings import service
from llmops_feedback.ratings.schemas import RatingAccepted, RatingIn, RatingPublic

router = APIRouter(prefix="/v1/feedback", tags=["ratings"], responses=ERROR_RESPONSES)


@router.post(
    "",
    status_code=201,
    responses={202: {"model": RatingAccepted, "description": "a key's rating, waiting for its request's record"}},
    openapi_extra=links(
        201, read_rated=link("get", "/v1/requests/{request_id}", request_id="$response.body#/request_id")
    ),
)
async def rate(
    data: RatingIn, caller: RaterDep, rated_at: RatedAtDep, session: SessionDep, state: StateDep
) -> RatingPublic:
    """Rates a logged request. Rating it again replaces the current rating and keeps the earlier ones; the same
    ``idempotency_key`` again is the same rating (answered as before, stored once). For a key (through the
    gateway) a request not logged yet is 202: the rating waits for its record, and attaches if the key made it."""
    outcome = await service.rate(session, data=data, key_id=caller.key_id, rated_by=caller.name, rated_at=rated_at)
    state.metrics.count_rated(outcome)
    if outcome.stored is None:
        return JSONResponse(service.accepted(data, outcome).model_dump(mode="json"), status_code=202)
    return outcome.stored.public
