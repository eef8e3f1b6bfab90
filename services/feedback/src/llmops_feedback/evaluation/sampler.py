"""Online scoring: a stable share of live answered requests (``FEEDBACK_EVAL_SAMPLE_RATE``, by a hash of the
request id) queued for the evaluation workers with each online rubric. Runs in the feedback service beside the
request log, off the request path: the gateway's answer never waits for a judge."""

import asyncio
import logging
from datetime import datetime, timedelta

from celery import Celery

from llmops_common.errors import log_failed_round
from llmops_common.sql import utcnow
from llmops_feedback.evaluation import rubrics, service
from llmops_feedback.evaluation.queue import dispatch
from llmops_feedback.state import FeedbackState

logger = logging.getLogger(__name__)
_BATCH = 2000


async def send(
    state: FeedbackState,
    celery: Celery,
    *,
    request_ids: list[str],
    rubric: rubrics.Rubric,
    judge_route: str | None,
    origin: str,
) -> list[str]:
    """Queues and sends; the rows commit only once the messages are sent, so a broker outage leaves nothing
    marked queued that no worker will ever see (the next pass finds those requests again)."""
    scorer = service.judge_scorer(judge_route) if rubric.kind == "judge" else service.DETERMINISTIC
    async with state.sessions() as session:
        fresh = await service.queue(session, request_ids=request_ids, rubric=rubric, scorer=scorer, origin=origin)
        if fresh:
            await asyncio.to_thread(
                dispatch, celery, queue=state.settings.eval_queue, request_ids=fresh, rubric=rubric.name,
                judge_route=judge_route,
            )  # fmt: skip
        await session.commit()
    return fresh


async def run_once(state: FeedbackState, celery: Celery, *, since: datetime) -> int:
    settings = state.settings
    sent = 0
    for name in settings.eval_online_rubrics:
        rubric = rubrics.get(name)
        if rubric is None or (rubric.kind == "judge" and not settings.eval_judge_route):
            continue  # refused at start-up; a judge rubric needs a judge route
        judge_route = settings.eval_judge_route if rubric.kind == "judge" else None
        scorer = service.judge_scorer(judge_route) if judge_route else service.DETERMINISTIC
        async with state.sessions() as session:
            ids = await service.candidates(
                session,
                rubric=rubric,
                scorer=scorer,
                since=since,
                exclude_route=settings.eval_judge_route,
                limit=_BATCH,
            )
        # (The judge's own requests are logged too, on its route: never judge a judgement.)
        chosen = [i for i in ids if service.in_sample(i, settings.eval_sample_rate)]
        sent += len(await send(state, celery, request_ids=chosen, rubric=rubric, judge_route=judge_route,
                               origin="online"))  # fmt: skip
    return sent


async def run(state: FeedbackState, celery: Celery) -> None:
    settings = state.settings
    window = timedelta(seconds=settings.eval_sample_window_s)
    watermark = utcnow() - window
    while True:
        started = utcnow()
        try:
            sent = await run_once(state, celery, since=max(watermark, started - window))
            if sent:
                logger.info("online sample queued", extra={"requests": sent})
            # Records arrive late (the gateway batches, spools through outages): look back a few intervals.
            watermark = started - timedelta(seconds=4 * settings.eval_sample_interval_s)
        except Exception as exc:  # noqa: BLE001 - logged (a bug with its traceback); the next pass tries again
            log_failed_round(logger, "online scoring pass failed", exc)
        await asyncio.sleep(settings.eval_sample_interval_s)
