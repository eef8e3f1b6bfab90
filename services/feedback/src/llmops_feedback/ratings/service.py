"""Thumbs up/down: the newest rating of a request is its current one; earlier ones stay as history.

Exactly once: every rating has an idempotency key (the client's, else generated), unique per rater, so a rating
delivered again (the gateway replays its spool after an outage) is found and not stored twice. A key's rating of a
request whose record has not arrived yet is held as pending (``ratings.pending``) and attached when it does.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_feedback.ratings import pending
from llmops_feedback.ratings.schemas import RatingAccepted, RatingIn
from llmops_feedback.ratings.store import StoredRating, add, by_idempotency_key, to_public
from llmops_feedback.records import service as records
from llmops_feedback.records.models import RequestRecord

PENDING_MESSAGE = (
    "accepted for delivery: the rating is stored and is attached to the request as soon as its record arrives "
    "(a rating of a request this key did not make is never attached)"
)


@dataclass
class Rated:
    """The outcome of one rating: ``stored`` (answered 201), or not yet (202: it waits for its record, or, with
    ``discarded``, never attaches). ``new``: stored by this call; ``duplicate``: a redelivery, nothing changed;
    ``held``: stored as pending by this call; ``attached``: pending ratings of this request attached meanwhile
    (this one among them if its record arrived while it was being held)."""

    idempotency_key: str
    stored: StoredRating | None = None
    new: bool = False
    duplicate: bool = False
    held: bool = False
    attached: pending.Attached | None = None
    discarded: str | None = None


def accepted(data: RatingIn, outcome: Rated) -> RatingAccepted:
    return RatingAccepted(
        status="pending",
        request_id=data.request_id,
        rating=data.rating,
        idempotency_key=outcome.idempotency_key,
        message=PENDING_MESSAGE,
    )


async def rate(
    session: AsyncSession, *, data: RatingIn, key_id: str | None, rated_by: str, rated_at: datetime
) -> Rated:
    """``key_id`` scopes the rating to that key's own requests (a client rating through the gateway); without it
    (the admin) the request must be known. For a key, a request it did not make and one not logged yet answer
    alike, so a key learns nothing about other keys' requests."""
    if data.idempotency_key is None:
        data = data.model_copy(update={"idempotency_key": uuid.uuid4().hex})
    outcome = Rated(idempotency_key=data.idempotency_key)
    if existing := await by_idempotency_key(session, rated_by=rated_by, idempotency_key=outcome.idempotency_key):
        record = await session.get(RequestRecord, existing.request_id)
        outcome.stored = StoredRating(to_public(existing), rated_by, record.route, record.variant)
        outcome.duplicate = True  # delivered again: the same answer, nothing stored
        return outcome
    if key_id is None:
        record = await records.get(session, request_id=data.request_id, for_update=True)
    else:
        record = await session.get(RequestRecord, data.request_id, with_for_update=True)
        if record is not None and record.key_id != key_id:
            outcome.discarded = "other_key"
            return outcome
    if record is not None:
        try:
            outcome.stored = await add(
                session,
                record=record,
                rating=data.rating,
                comment=data.comment,
                correction=data.correction,
                rated_by=rated_by,
                rated_at=rated_at,
                idempotency_key=outcome.idempotency_key,
            )
            await session.commit()
            outcome.new = True
        except IntegrityError:  # the same rating, delivered twice at once: the other delivery stored it
            await session.rollback()
            return await rate(session, data=data, key_id=key_id, rated_by=rated_by, rated_at=rated_at)
        return outcome
    outcome.held = await pending.hold(
        session, data=data, key_id=key_id, idempotency_key=outcome.idempotency_key, rated_at=rated_at
    )
    # The record may have arrived between the look-up and the hold, its ingest not yet seeing this rating: look
    # again now that the rating is stored. (Each side stores first and looks second, so one of them attaches it.)
    outcome.attached = await pending.attach(session, request_ids=[data.request_id])
    outcome.duplicate = not outcome.held
    for stored in outcome.attached.ratings:
        if stored.rated_by == rated_by and stored.public.idempotency_key == outcome.idempotency_key:
            outcome.stored = stored
    return outcome
