"""Ratings that came before their request's record: held durably, attached when the record arrives, else dropped.

The gateway answers before its request record reaches this service (records go in batches, and wait on the
gateway's disk while this service is down), so a client that rates at once would otherwise be told the request does
not exist. A key's rating of an unknown request is held here with that key as its claimed owner. Each record
ingest looks for ratings waiting on its request ids: one whose key made the request is attached; one of another key
(or of a request made without a key) is discarded, as is one whose record does not arrive within the TTL.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.sql import utcnow
from llmops_feedback.ratings.models import PendingRating
from llmops_feedback.ratings.schemas import RatingIn
from llmops_feedback.ratings.store import StoredRating, add, by_idempotency_key
from llmops_feedback.records.models import RequestRecord

_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


@dataclass
class Attached:
    ratings: list[StoredRating] = field(default_factory=list)
    discarded: Counter = field(default_factory=Counter)  # by reason


async def hold(session: AsyncSession, *, data: RatingIn, key_id: str, idempotency_key: str, rated_at: datetime) -> bool:
    """Stores the rating as pending (committed); False if it was held already (a redelivery changes nothing)."""
    row = {
        "request_id": data.request_id,
        "key_id": key_id,
        "idempotency_key": idempotency_key,
        "rating": data.rating,
        "comment": data.comment,
        "correction": data.correction,
        "rated_at": rated_at,
        "received_at": utcnow(),
    }
    insert = _INSERT[session.bind.dialect.name]
    statement = insert(PendingRating).values(row).on_conflict_do_nothing(index_elements=["key_id", "idempotency_key"])
    inserted = (await session.execute(statement.returning(PendingRating.id))).first() is not None
    await session.commit()
    return inserted


async def attach(session: AsyncSession, *, request_ids: list[str]) -> Attached:
    """Attaches or discards the pending ratings of those requests whose records are stored; others keep waiting.
    Safe with several replicas at once: a pending row is handled by whoever deletes it."""
    result = Attached()
    if not request_ids:
        return result
    query = select(PendingRating.__table__).where(PendingRating.request_id.in_(set(request_ids)))
    # Plain rows, not ORM objects: a rollback below would expire those.
    waiting = (await session.execute(query.order_by(PendingRating.rated_at, PendingRating.id))).all()
    for held in waiting:  # rare: only ratings given within moments of their answer, or during an outage
        record = await session.get(RequestRecord, held.request_id, with_for_update=True, populate_existing=True)
        if record is None:
            await session.rollback()
            continue
        taken = await session.execute(_delete(held))
        if taken.rowcount != 1:  # another replica handled it
            await session.rollback()
            continue
        if record.key_id != held.key_id:
            result.discarded["other_key"] += 1
        elif not await by_idempotency_key(session, rated_by=held.key_id, idempotency_key=held.idempotency_key):
            try:
                stored = await add(
                    session,
                    record=record,
                    rating=held.rating,
                    comment=held.comment,
                    correction=held.correction,
                    rated_by=held.key_id,
                    rated_at=held.rated_at,
                    idempotency_key=held.idempotency_key,
                )
            except IntegrityError:  # the same rating stored directly at this moment: drop the held copy
                await session.rollback()
                await session.execute(_delete(held))
            else:
                result.ratings.append(stored)
        await session.commit()
    return result


def _delete(held):
    """The held row itself, by its unique (key, idempotency key), never by id alone: SQLite gives a deleted row's id
    to the next insert, so a row read a moment ago may be another rating's by now (that deleted it unattached)."""
    return delete(PendingRating).where(
        PendingRating.id == held.id,
        PendingRating.key_id == held.key_id,
        PendingRating.idempotency_key == held.idempotency_key,
    )


async def expire(session: AsyncSession, *, received_before: datetime) -> int:
    """Discards pending ratings whose record did not arrive in time; how many."""
    removed = await session.execute(delete(PendingRating).where(PendingRating.received_at < received_before))
    await session.commit()
    return removed.rowcount


async def waiting(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(PendingRating))
