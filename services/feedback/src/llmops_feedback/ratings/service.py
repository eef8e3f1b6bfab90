"""Thumbs up/down: the newest rating of a request is its current one; earlier ones stay as history."""

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.sql import utcnow
from llmops_feedback.ratings.models import Rating
from llmops_feedback.ratings.schemas import RatingIn, RatingPublic
from llmops_feedback.records import service as records
from llmops_feedback.records.models import RequestRecord


def to_public(rating: Rating) -> RatingPublic:
    return RatingPublic.model_validate(rating, from_attributes=True)


async def rate(
    session: AsyncSession, *, data: RatingIn, key_id: str | None, rated_by: str
) -> tuple[Rating, RequestRecord]:
    """``key_id`` scopes the rating to that key's own requests (a client rating through the gateway)."""
    record = await records.get(session, request_id=data.request_id, key_id=key_id, for_update=True)
    await session.execute(
        update(Rating).where(Rating.request_id == data.request_id, Rating.current.is_(True)).values(current=False)
    )
    rating = Rating(
        request_id=data.request_id,
        rating=data.rating,
        comment=data.comment,
        correction=data.correction,
        current=True,
        rated_by=rated_by,
        created_at=utcnow(),
    )
    session.add(rating)
    await session.commit()
    return rating, record
