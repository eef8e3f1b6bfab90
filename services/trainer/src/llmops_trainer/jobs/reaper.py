"""The reaper: a running job whose heartbeat went stale lost its worker (killed, out of memory, machine gone).
It is retried, or failed with that reason once out of attempts; never left "running".

It runs in every API replica; each change is a conditional UPDATE, so replicas racing on one job do it once.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmops_common.sql import utcnow
from llmops_trainer.jobs.models import JobState, TrainingJob
from llmops_trainer.jobs.schemas import JobSpec
from llmops_trainer.jobs.service import spec_of

logger = logging.getLogger(__name__)

Dispatch = Callable[[str, JobSpec], Awaitable[str]]  # job id, its spec -> task id


async def reap(
    session: AsyncSession, *, timeout_s: float, max_attempts: int, dispatch: Dispatch
) -> dict[str, list[str]]:
    """One pass. Returns the job ids by outcome: requeued, failed, cancelled."""
    now = utcnow()
    cutoff = now - timedelta(seconds=timeout_s)
    stale = list(
        (
            await session.execute(
                select(TrainingJob).where(TrainingJob.state == JobState.running, TrainingJob.heartbeat_at < cutoff)
            )
        ).scalars()
    )
    outcomes: dict[str, list[str]] = {"requeued": [], "failed": [], "cancelled": []}
    for job in stale:
        silent_s = (now - job.heartbeat_at).total_seconds()
        lost = f"worker {job.worker or '?'} lost (no heartbeat for {silent_s:.0f}s) in attempt {job.attempt}"
        still_stale = (
            TrainingJob.id == job.id,
            TrainingJob.attempt == job.attempt,
            TrainingJob.state == JobState.running,
            TrainingJob.heartbeat_at < cutoff,
        )
        if job.cancel_requested:
            outcome, values = "cancelled", {"state": JobState.cancelled, "finished_at": now, "error": None}
        elif job.attempt >= max_attempts:
            outcome, values = "failed", {"state": JobState.failed, "finished_at": now, "error": f"{lost}; gave up"}
        else:
            # The message goes out first: one lost between our commit and the send would strand the job as queued.
            # Arriving early is fine: a worker may claim a running job whose heartbeat is stale.
            try:
                task_id = await dispatch(job.id, spec_of(job))
            except Exception as exc:  # noqa: BLE001 - the broker is down: try again on the next pass
                logger.warning("could not requeue a lost job", extra={"job_id": job.id, "error": repr(exc)})
                continue
            outcome = "requeued"
            values = {
                "state": JobState.queued,
                "heartbeat_at": None,
                "task_id": task_id,
                "eta_s": None,
                "error": f"{lost}; retrying ({job.attempt + 1} of {max_attempts})",
            }
        result = await session.execute(update(TrainingJob).where(*still_stale).values(**values))
        await session.commit()
        if result.rowcount == 1:
            outcomes[outcome].append(job.id)
            logger.warning("reaped a lost job", extra={"job_id": job.id, "outcome": outcome, "reason": lost})
    return outcomes


async def run(
    sessions: async_sessionmaker[AsyncSession],
    *,
    interval_s: float,
    timeout_s: float,
    max_attempts: int,
    dispatch: Dispatch,
    on_pass: Callable[[dict[str, list[str]]], None],
) -> None:
    """Reaps every ``interval_s`` until cancelled; a failing pass (database down) is logged and retried."""
    while True:
        try:
            async with sessions() as session:
                outcomes = await reap(session, timeout_s=timeout_s, max_attempts=max_attempts, dispatch=dispatch)
                on_pass(outcomes)
        except asyncio.CancelledError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            # The database is down or restarting: a line per pass, not a traceback twice a second.
            logger.warning("reaper pass failed: database unreachable", extra={"error": repr(exc)[:300]})
        except Exception:  # a bug: its traceback; the next pass tries again
            logger.exception("reaper pass failed")
        await asyncio.sleep(interval_s)
