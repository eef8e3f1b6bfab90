"""Discards pending ratings whose record never came, in the background: a bounded wait, counted in a metric."""

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from llmops_common.sql import utcnow
from llmops_feedback.ratings import pending
from llmops_feedback.state import FeedbackState

logger = logging.getLogger(__name__)


async def sweep_once(state: FeedbackState) -> int:
    received_before = utcnow() - timedelta(seconds=state.settings.pending_rating_ttl_s)
    async with state.sessions() as session:
        expired = await pending.expire(session, received_before=received_before)
        state.metrics.pending_waiting.set(await pending.waiting(session))
    if expired:
        state.metrics.pending_discarded.labels("expired").inc(expired)
        logger.info("pending ratings expired without their request record", extra={"ratings": expired})
    return expired


async def run(state: FeedbackState) -> None:
    while True:
        try:
            await sweep_once(state)
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("pending rating sweep failed", extra={"error": repr(exc)})
        await asyncio.sleep(state.settings.pending_sweep_s)
