"""Storing a rating on a request that is logged: shared by direct ratings and by pending ones being attached."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_feedback.ratings.models import Rating
from llmops_feedback.ratings.schemas import RatingPublic
from llmops_feedback.records.models import RequestRecord


@dataclass(frozen=True)
class StoredRating:
    """A rating as stored, in plain values (the ORM rows expire when a later step rolls back)."""

    public: RatingPublic
    rated_by: str | None
    route: str
    variant: str


def to_public(rating: Rating) -> RatingPublic:
    return RatingPublic.model_validate(rating, from_attributes=True)


async def by_idempotency_key(session: AsyncSession, *, rated_by: str, idempotency_key: str) -> Rating | None:
    query = select(Rating).where(Rating.rated_by == rated_by, Rating.idempotency_key == idempotency_key)
    return await session.scalar(query)


async def add(
    session: AsyncSession,
    *,
    record: RequestRecord,
    rating: str,
    comment: str | None,
    correction: str | None,
    rated_by: str,
    rated_at: datetime,
    idempotency_key: str,
) -> StoredRating:
    """Adds a rating to a request whose record the caller holds locked, and makes the newest one (by when it was
    given, not when it arrived: a replayed rating must not overrule a later one) the only current one. The caller
    commits."""
    row = Rating(
        request_id=record.request_id,
        rating=rating,
        comment=comment,
        correction=correction,
        current=False,
        rated_by=rated_by,
        created_at=rated_at,
        idempotency_key=idempotency_key,
    )
    session.add(row)
    await session.flush()
    of_request = Rating.request_id == record.request_id
    newest = await session.scalar(
        select(Rating.id).where(of_request).order_by(Rating.created_at.desc(), Rating.id.desc()).limit(1)
    )
    await session.execute(
        update(Rating).where(of_request).values(current=Rating.id == newest),
        execution_options={"synchronize_session": False},
    )
    row.current = row.id == newest
    return StoredRating(to_public(row), rated_by, record.route, record.variant)
