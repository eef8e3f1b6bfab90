"""A job's state changes on the worker's side, each one conditional UPDATE.

``attempt`` fences them: a worker claims a job by incrementing it and every later write names the attempt it owns.
A worker that lost its job (its heartbeat went stale and the job was requeued and claimed elsewhere) matches no row,
finds out, and stops: two workers never both report on one job.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.sql import utcnow
from llmops_trainer.jobs.models import JobState, TrainingJob


@dataclass(frozen=True)
class Claim:
    job: TrainingJob | None  # the job now running under ``attempt``; None: nothing to run
    reason: str = ""  # why not, for the log


def _startable(now: datetime, stale_after_s: float):
    """Queued, or running with a heartbeat older than ``stale_after_s`` (its worker is gone)."""
    cutoff = now - timedelta(seconds=stale_after_s)
    stale = or_(TrainingJob.heartbeat_at.is_(None), TrainingJob.heartbeat_at < cutoff)
    return or_(TrainingJob.state == JobState.queued, and_(TrainingJob.state == JobState.running, stale))


async def claim(
    session: AsyncSession, *, job_id: str, worker: str, task_id: str | None, stale_after_s: float, max_attempts: int
) -> Claim:
    """Starts the job if it is startable (see ``_startable``: a running job with a stale heartbeat is the
    redelivered message of a lost worker). Skips jobs that are finished or alive on another worker; ends, without
    starting them, startable jobs that were cancelled or are out of attempts."""
    now = utcnow()
    startable = _startable(now, stale_after_s)
    result = await session.execute(
        update(TrainingJob)
        .where(
            TrainingJob.id == job_id,
            startable,
            TrainingJob.cancel_requested.is_(False),
            TrainingJob.attempt < max_attempts,
        )
        .values(
            state=JobState.running,
            attempt=TrainingJob.attempt + 1,
            worker=worker,
            task_id=task_id,
            started_at=now,
            heartbeat_at=now,
            finished_at=None,
            step=0,
            total_steps=None,
            epoch=None,
            loss=None,
            eval_loss=None,
            eta_s=None,
        )
    )
    await session.commit()
    job = await session.get(TrainingJob, job_id, populate_existing=True)
    if result.rowcount == 1:
        return Claim(job)
    if job is None:
        return Claim(None, "no such job")
    if job.cancel_requested and await _end_unstarted(session, job, startable, JobState.cancelled, error=None):
        return Claim(None, "cancelled before it started")
    error = f"{job.error or 'failed'} (gave up after {job.attempt} attempts)"
    if job.attempt >= max_attempts and await _end_unstarted(session, job, startable, JobState.failed, error=error):
        return Claim(None, "out of attempts")
    return Claim(None, f"job is {job.state}" + (" on another worker" if job.state == JobState.running else ""))


async def _end_unstarted(session: AsyncSession, job: TrainingJob, startable, state: JobState, *, error) -> bool:
    result = await session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job.id, TrainingJob.attempt == job.attempt, startable)
        .values(state=state, finished_at=utcnow(), eta_s=None, error=error)
    )
    await session.commit()
    return result.rowcount == 1


async def heartbeat(session: AsyncSession, *, job_id: str, attempt: int, progress: dict) -> tuple[bool, bool]:
    """Records liveness and progress. Returns (still owned, cancel requested)."""
    result = await session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.attempt == attempt, TrainingJob.state == JobState.running)
        .values(heartbeat_at=utcnow(), **progress)
        .returning(TrainingJob.cancel_requested)
    )
    row = result.first()
    await session.commit()
    return (row is not None, bool(row and row[0]))


async def update_running(session: AsyncSession, *, job_id: str, attempt: int, **values) -> bool:
    result = await session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.attempt == attempt, TrainingJob.state == JobState.running)
        .values(**values)
    )
    await session.commit()
    return result.rowcount == 1


async def finish(session: AsyncSession, *, job_id: str, attempt: int, state: JobState, **values) -> bool:
    """succeeded, failed or cancelled; False when this attempt no longer owns the job."""
    return await update_running(
        session, job_id=job_id, attempt=attempt, state=state, finished_at=utcnow(), eta_s=None, **values
    )


async def requeue(session: AsyncSession, *, job_id: str, attempt: int, error: str) -> bool:
    """Back to queued after a transient failure; the retry's message claims it again."""
    return await update_running(
        session, job_id=job_id, attempt=attempt, state=JobState.queued, heartbeat_at=None, eta_s=None, error=error
    )


async def previous_run(session: AsyncSession, *, job_id: str) -> str | None:
    return (await session.execute(select(TrainingJob.mlflow_run_id).where(TrainingJob.id == job_id))).scalar()
