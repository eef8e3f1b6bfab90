"""A client's rating through the gateway: validated here with the feedback service's own contract, then sent, or,
while the feedback service is down, kept on disk and answered 202: accepted from the moment the answer ends."""

import logging
import time
import uuid

from pydantic import ValidationError

from llmops_common.contracts.ratings import RatingAccepted, RatingIn
from llmops_common.errors import APIError, validation_error
from llmops_common.requests import parse_json_object
from llmops_gateway.feedback.client import RatingsForwarder
from llmops_gateway.feedback.delivery import FeedbackUnreachable, RatingDelivery, RatingSpool

logger = logging.getLogger(__name__)

QUEUED_MESSAGE = (
    "accepted for delivery: the feedback service is unavailable, so the gateway stored the rating and delivers it "
    "once it is back (a rating of a request this key did not make is never attached)"
)


def prepare(body: bytes, *, key_id: str) -> RatingDelivery:
    """The rating to deliver: 400/422 (the OpenAI error body) if the feedback service would refuse it. An
    idempotency key is generated unless the client gave one: delivered once or many times, it is stored once."""
    try:
        rating = RatingIn.model_validate(parse_json_object(body))
    except ValidationError as exc:
        raise validation_error(exc.errors(include_url=False)) from None
    if rating.idempotency_key is None:
        rating = rating.model_copy(update={"idempotency_key": uuid.uuid4().hex})
    return RatingDelivery(key_id=key_id, rated_at=time.time(), rating=rating)


async def submit(ratings: RatingsForwarder, delivery: RatingDelivery, *, request_id: str) -> tuple[int, bytes]:
    """The feedback service's answer (201 rated, 202 pending, 4xx), or 202 ``queued`` when it cannot take the
    rating now and the spool can."""
    spool = ratings.spool
    if spool is not None and not spool.reachable:  # known down: do not make the client wait for a timeout
        return await _queue(spool, delivery)
    try:
        return await ratings.send(delivery, request_id=request_id)
    except FeedbackUnreachable as exc:
        if spool is None:
            raise APIError(503, "feedback service unavailable", code="feedback_unavailable") from exc
        logger.warning("feedback service unreachable; spooling a rating", extra={"error": str(exc)})
        return await _queue(spool, delivery)


async def _queue(spool: RatingSpool, delivery: RatingDelivery) -> tuple[int, bytes]:
    try:
        await spool.spool_rating(delivery)
    except OSError as exc:  # the disk: nowhere to keep it
        logger.error("could not spool a rating", extra={"error": repr(exc)})
        raise APIError(503, "feedback service unavailable", code="feedback_unavailable") from exc
    accepted = RatingAccepted(
        status="queued",
        request_id=delivery.rating.request_id,
        rating=delivery.rating.rating,
        idempotency_key=delivery.rating.idempotency_key,
        message=QUEUED_MESSAGE,
    )
    return 202, accepted.model_dump_json().encode()
