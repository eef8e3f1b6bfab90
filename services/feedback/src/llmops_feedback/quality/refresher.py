"""Recomputes the quality gauges in the background, so a Prometheus scrape never runs a query."""

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from llmops_common.sql import utcnow
from llmops_feedback.quality.service import summarize
from llmops_feedback.state import FeedbackState

logger = logging.getLogger(__name__)


async def refresh_once(state: FeedbackState) -> None:
    until = utcnow()
    since = until - timedelta(seconds=state.settings.quality_window_s)
    async with state.sessions() as session:
        state.metrics.quality.summary = await summarize(session, since=since, until=until)


async def run(state: FeedbackState) -> None:
    while True:
        try:
            await refresh_once(state)
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("quality refresh failed", extra={"error": repr(exc)})
        await asyncio.sleep(state.settings.quality_refresh_s)
