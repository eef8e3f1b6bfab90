"""Training data from the request log: SFT examples in chat format, and preference pairs.

SFT: every thumbs-up answer, and every correction (a better answer a user wrote), as a conversation
ending in the assistant turn to learn. Preference: (chosen, rejected) where both exist for one
prompt: a correction beats the answer it corrected, and a thumbs-up answer beats a thumbs-down
answer to the same prompt. The lines' shapes are ``llmops_common.contracts.datasets``: the trainer reads them.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import orjson
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.contracts.datasets import ChatMessage, LineMetadata, PreferenceLine, SFTLine
from llmops_feedback.ratings.models import Rating
from llmops_feedback.records.models import RequestRecord


@dataclass(frozen=True)
class Filters:
    route: str | None = None
    variant: str | None = None
    since: datetime | None = None
    until: datetime | None = None


_CONVERSATION = TypeAdapter(list[ChatMessage])


def _messages(record: RequestRecord) -> list[ChatMessage] | None:
    """The prompt as chat messages, or None when it cannot be training text (redacted, odd shapes, roles other than
    system/user/assistant, token ids)."""
    prompt = record.prompt
    if record.kind == "chat":
        try:
            return _CONVERSATION.validate_python(prompt) if isinstance(prompt, list) else None
        except ValidationError:
            return None
    if isinstance(prompt, str):
        return [ChatMessage(role="user", content=prompt)]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return [ChatMessage(role="user", content="\n".join(prompt))]
    return None  # token ids: no text to learn from


def _meta(record: RequestRecord, source: str) -> LineMetadata:
    return LineMetadata(request_id=record.request_id, route=record.route, variant=record.variant, source=source)


def _line(line: SFTLine | PreferenceLine) -> bytes:
    return orjson.dumps(line.model_dump(mode="json", exclude_none=True)) + b"\n"


async def _rated(session: AsyncSession, filters: Filters) -> AsyncIterator[tuple[RequestRecord, Rating]]:
    """Successful, text-bearing requests with their current rating, oldest first."""
    query = (
        select(RequestRecord, Rating)
        .join(Rating, and_(Rating.request_id == RequestRecord.request_id, Rating.current.is_(True)))
        .where(RequestRecord.status == 200, RequestRecord.redacted.is_(False), RequestRecord.prompt.is_not(None))
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
        prompt = _messages(record)
        if prompt is None:
            continue
        messages = [*prompt, ChatMessage(role="assistant", content=answer)]
        yield _line(SFTLine(messages=messages, metadata=_meta(record, source)))


async def preference_lines(session: AsyncSession, filters: Filters) -> AsyncIterator[bytes]:
    liked: dict[bytes, RequestRecord] = {}  # prompt → the first answer rated up
    waiting: dict[bytes, list[RequestRecord]] = {}  # prompt → answers rated down before any up
    async for record, rating in _rated(session, filters):
        messages = _messages(record)
        if messages is None or not record.answer:
            continue
        if rating.correction and rating.correction != record.answer:
            yield _pair(messages, rating.correction, record.answer, record, "correction")
            continue
        prompt = orjson.dumps([m.model_dump() for m in messages], option=orjson.OPT_SORT_KEYS)
        # Every thumbs-down answer pairs with the prompt's first thumbs-up answer, whichever came first.
        if rating.rating == "down":
            if prompt in liked:
                yield _pair(messages, liked[prompt].answer, record.answer, record, "thumbs")
            else:
                waiting.setdefault(prompt, []).append(record)
        elif prompt not in liked:
            liked[prompt] = record
            for bad in waiting.pop(prompt, []):
                yield _pair(messages, record.answer, bad.answer, bad, "thumbs")


def _pair(messages: list[ChatMessage], chosen: str, rejected: str, record: RequestRecord, source: str) -> bytes:
    return _line(
        PreferenceLine(
            prompt=messages,
            chosen=[ChatMessage(role="assistant", content=chosen)],
            rejected=[ChatMessage(role="assistant", content=rejected)],
            metadata=_meta(record, source),
        )
    )
