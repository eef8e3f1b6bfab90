"""Training data from the request log: SFT examples in chat format, and preference pairs.

SFT: every thumbs-up answer, and every correction (a better answer a user wrote), as a conversation
ending in the assistant turn to learn. Preference: (chosen, rejected) where both exist for one
prompt: a correction beats the answer it corrected, and a thumbs-up answer beats a thumbs-down
answer to the same prompt.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_feedback.ratings.models import Rating
from llmops_feedback.records.models import RequestRecord


@dataclass(frozen=True)
class Filters:
    route: str | None = None
    variant: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _messages(record: RequestRecord) -> list[dict]:
    if record.kind == "chat":
        return [{"role": m["role"], "content": m.get("content")} for m in record.prompt]
    prompt = record.prompt if isinstance(record.prompt, str) else "\n".join(map(str, record.prompt))
    return [{"role": "user", "content": prompt}]


def _meta(record: RequestRecord, source: str) -> dict:
    return {"request_id": record.request_id, "route": record.route, "variant": record.variant, "source": source}


async def _rated(session: AsyncSession, filters: Filters) -> AsyncIterator[tuple[RequestRecord, Rating]]:
    """Successful, text-bearing requests with their current rating, oldest first."""
    query = (
        select(RequestRecord, Rating)
        .join(Rating, and_(Rating.request_id == RequestRecord.request_id, Rating.current.is_(True)))
        .where(RequestRecord.status == 200, RequestRecord.prompt.is_not(None))
        .order_by(RequestRecord.started_at, RequestRecord.request_id)
    )
    if filters.route is not None:
        query = query.where(RequestRecord.route == filters.route)
    if filters.variant is not None:
        query = query.where(RequestRecord.variant == filters.variant)
    if filters.since is not None:
        query = query.where(RequestRecord.started_at >= filters.since)
    if filters.until is not None:
        query = query.where(RequestRecord.started_at < filters.until)
    async for record, rating in await session.stream(query.execution_options(yield_per=500)):
        yield record, rating


async def sft_lines(session: AsyncSession, filters: Filters) -> AsyncIterator[bytes]:
    async for record, rating in _rated(session, filters):
        if rating.correction:
            answer, source = rating.correction, "correction"
        elif rating.rating == "up" and record.answer:
            answer, source = record.answer, "thumbs_up"
        else:
            continue
        messages = [*_messages(record), {"role": "assistant", "content": answer}]
        yield orjson.dumps({"messages": messages, "metadata": _meta(record, source)}) + b"\n"


async def preference_lines(session: AsyncSession, filters: Filters) -> AsyncIterator[bytes]:
    liked: dict[bytes, RequestRecord] = {}  # prompt → an answer rated up
    disliked: dict[bytes, RequestRecord] = {}  # prompt → an answer rated down, not yet paired
    async for record, rating in _rated(session, filters):
        if not record.answer:
            continue
        messages = _messages(record)
        if rating.correction and rating.correction != record.answer:
            yield _pair(messages, rating.correction, record.answer, record, "correction")
            continue
        prompt = orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)
        if rating.rating == "up":
            liked.setdefault(prompt, record)
            other = disliked.pop(prompt, None)
        else:
            other = liked.get(prompt)
            if other is None:
                disliked.setdefault(prompt, record)
        if other is not None:
            good, bad = (record, other) if rating.rating == "up" else (other, record)
            yield _pair(messages, good.answer, bad.answer, bad, "thumbs")


def _pair(messages: list[dict], chosen: str, rejected: str, record: RequestRecord, source: str) -> bytes:
    return (
        orjson.dumps(
            {
                "prompt": messages,
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}],
                "metadata": _meta(record, source),
            }
        )
        + b"\n"
    )
