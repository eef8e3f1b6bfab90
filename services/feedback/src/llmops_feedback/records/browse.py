"""Browsing the request log: newest first, filtered by route, variant, keys, current rating and time (the console's
feedback browser and ``GET /v1/requests``). Keyset pagination on (started_at, request_id), so a page never
repeats or skips a record that arrives while someone pages."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_feedback.ratings.models import Rating
from llmops_feedback.records.models import RequestRecord
from llmops_feedback.records.schemas import RequestSummary

PREVIEW_CHARS = 160


class RatingFilter(StrEnum):
    up = "up"
    down = "down"
    rated = "rated"
    unrated = "unrated"


async def search(
    session: AsyncSession,
    *,
    route: str | None = None,
    variant: str | None = None,
    key_ids: list[str] | None = None,
    rating: RatingFilter | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> list[RequestSummary]:
    current = (
        select(Rating.rating)
        .where(Rating.request_id == RequestRecord.request_id, Rating.current.is_(True))
        .order_by(Rating.created_at.desc(), Rating.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = select(RequestRecord, current.label("current_rating"))
    if route:
        query = query.where(RequestRecord.route == route)
    if variant:
        query = query.where(RequestRecord.variant == variant)
    if key_ids is not None:  # an empty list matches nothing: a team without keys has no requests
        query = query.where(RequestRecord.key_id.in_(key_ids))
    if since:
        query = query.where(RequestRecord.started_at >= since)
    if until:
        query = query.where(RequestRecord.started_at < until)
    if rating in (RatingFilter.up, RatingFilter.down):
        query = query.where(current == rating.value)
    elif rating is not None:
        any_rating = exists().where(Rating.request_id == RequestRecord.request_id)
        query = query.where(any_rating if rating is RatingFilter.rated else ~any_rating)
    if before:
        started, request_id = before
        query = query.where(
            or_(
                RequestRecord.started_at < started,
                and_(RequestRecord.started_at == started, RequestRecord.request_id < request_id),
            )
        )
    query = query.order_by(RequestRecord.started_at.desc(), RequestRecord.request_id.desc()).limit(limit)
    return [_summary(record, current_rating) for record, current_rating in (await session.execute(query)).all()]


def _summary(record: RequestRecord, current_rating: str | None) -> RequestSummary:
    return RequestSummary(
        request_id=record.request_id,
        key_id=record.key_id,
        route=record.route,
        variant=record.variant,
        model=record.model,
        status=record.status,
        started_at=record.started_at,
        latency_ms=record.latency_ms,
        rating=current_rating,
        prompt_preview=_preview(_last_user_text(record.prompt)),
        answer_preview=_preview(record.answer),
    )


def _last_user_text(prompt: list | str | None) -> str | None:
    """A chat prompt's last user message (what the user asked), or a text prompt."""
    if isinstance(prompt, str) or prompt is None:
        return prompt
    for message in reversed(prompt):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts: keep the text ones
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content if isinstance(content, str) else None
    return None


def _preview(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
