"""Eval sets: uploaded, or built from feedback (a correction becomes the reference; a thumbs-up answer is one too),
versioned by the hash of their canonical JSONL, exported as JSONL."""

import hashlib
from datetime import datetime

import orjson
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.errors import APIError
from llmops_common.sql import utcnow
from llmops_feedback.evaluation.items import question_of, sources_of
from llmops_feedback.evaluation.models import EvalSet
from llmops_feedback.evaluation.schemas import EvalItem
from llmops_feedback.ratings.models import Rating
from llmops_feedback.records.models import RequestRecord


def jsonl(items: list[EvalItem]) -> bytes:
    """One item per line, keys sorted, empty fields left out: the bytes the version is the hash of."""
    lines = (
        orjson.dumps(i.model_dump(exclude_none=True, exclude_defaults=True), option=orjson.OPT_SORT_KEYS) for i in items
    )
    return b"".join(line + b"\n" for line in lines)


def version_of(items: list[EvalItem]) -> str:
    return hashlib.sha256(jsonl(items)).hexdigest()[:16]


async def from_feedback(session: AsyncSession, *, route: str | None, since: datetime, limit: int) -> list[EvalItem]:
    """Rated requests with stored text, newest first: a correction is the reference; a thumbs-up answer is one when
    there is no correction (a thumbs-down without a correction says only what is wrong: left out)."""
    current = and_(Rating.request_id == RequestRecord.request_id, Rating.current.is_(True))
    query = (
        select(RequestRecord.request_id, RequestRecord.prompt, RequestRecord.answer, Rating.rating, Rating.correction)
        .join(Rating, current)
        .where(RequestRecord.started_at >= since, RequestRecord.prompt.is_not(None))
        .order_by(RequestRecord.started_at.desc())
        .limit(limit)
    )
    if route is not None:
        query = query.where(RequestRecord.route == route)
    items = []
    for request_id, prompt, answer, rating, correction in (await session.execute(query)).all():
        reference, origin = (correction, "correction") if correction else (answer, "thumbs_up")
        if not reference or (not correction and rating != "up"):
            continue
        question = question_of(prompt)
        if question:
            items.append(EvalItem(question=question, reference=reference, sources=sources_of(prompt),
                                  request_id=request_id, origin=origin))  # fmt: skip
    return items


async def create(session: AsyncSession, *, name: str, items: list[EvalItem], origin: str) -> tuple[EvalSet, bool]:
    """Stores the set unless this version of it exists; returns it and whether it is new."""
    if not items:
        raise APIError(422, "an eval set needs at least one item", code="empty_eval_set", param="items")
    version = version_of(items)
    found = await session.scalar(select(EvalSet).where(EvalSet.name == name, EvalSet.version == version))
    if found is not None:
        return found, False
    row = EvalSet(name=name, version=version, origin=origin, size=len(items),
                  items=[i.model_dump(exclude_none=True) for i in items], created_at=utcnow())  # fmt: skip
    session.add(row)
    await session.commit()
    return row, True


async def get(session: AsyncSession, *, name: str, version: str = "latest") -> EvalSet:
    query = select(EvalSet).where(EvalSet.name == name)
    if version != "latest":
        query = query.where(EvalSet.version == version)
    found = await session.scalar(query.order_by(EvalSet.id.desc()).limit(1))
    if found is None:
        raise APIError(404, f"eval set {name!r} version {version!r} not found", code="eval_set_not_found")
    return found


async def list_all(session: AsyncSession) -> list[EvalSet]:
    return list((await session.scalars(select(EvalSet).order_by(EvalSet.name, EvalSet.id.desc()))).all())


async def replayed(session: AsyncSession, *, route: str | None, since: datetime, limit: int) -> list[dict]:
    """Recently answered prompts as items without references (each question once), newest first."""
    query = select(RequestRecord.prompt).where(
        RequestRecord.started_at >= since, RequestRecord.prompt.is_not(None), RequestRecord.status < 400
    )
    if route is not None:
        query = query.where(RequestRecord.route == route)
    prompts = (await session.scalars(query.order_by(RequestRecord.started_at.desc()).limit(limit))).all()
    return [{"question": q} for q in dict.fromkeys(question_of(p) for p in prompts) if q]
