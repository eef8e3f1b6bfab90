from fastapi import APIRouter

from llmops_feedback.deps import RaterDep, SessionDep, StateDep
from llmops_feedback.ratings import service
from llmops_feedback.ratings.schemas import RatingIn, RatingPublic

router = APIRouter(prefix="/v1/feedback", tags=["ratings"])


@router.post("", status_code=201)
async def rate(data: RatingIn, caller: RaterDep, session: SessionDep, state: StateDep) -> RatingPublic:
    """Rates a logged request. Rating it again replaces the current rating and keeps the earlier ones."""
    rating, record = await service.rate(
        session, data=data, key_id=caller.key_id, rated_by="admin" if caller.admin else caller.key_id
    )
    state.metrics.ratings.labels(record.route, record.variant, rating.rating).inc()
    return service.to_public(rating)
