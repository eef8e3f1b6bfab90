"""Job statistics for the trainer's metrics, read from the job table in the background.

Why from the table and not from counters: jobs end in the worker's pool processes, which live one job each
(``worker_max_jobs_per_child``) and have no metrics endpoint, so counters there would be lost. The table is the
truth every API replica shares: they all report the same numbers, and a restart resets nothing (jobs are never
deleted, so the duration histogram only grows, as a Prometheus histogram must).
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, extract, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmops_common.sql import utcnow
from llmops_trainer.jobs.models import FINISHED, JobState, TrainingJob

logger = logging.getLogger(__name__)

# Run time of a job's last attempt: LoRA jobs take minutes to hours.
DURATION_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0)
MAX_RECENT = 50  # bounds the per-job series (loss, progress) whatever happens


@dataclass(frozen=True)
class Durations:
    """A cumulative histogram of one final state: ``le[i]`` jobs took at most ``DURATION_BUCKETS[i]`` seconds."""

    le: tuple[int, ...]
    count: int
    total_s: float


@dataclass(frozen=True)
class RecentJob:
    id: str
    model_name: str
    state: str
    step: int
    total_steps: int | None
    loss: float | None
    eval_loss: float | None


@dataclass(frozen=True)
class JobStats:
    counts: dict[str, int]  # every state, zeros included
    durations: dict[str, Durations]  # every final state, zeros included
    recent: list[RecentJob]  # running, or finished within ``recent_s``: their loss stays on the dashboard a while


async def counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(TrainingJob.state, func.count()).group_by(TrainingJob.state))
    found = dict(rows.all())
    return {state.value: found.get(state.value, 0) for state in JobState}


def _run_seconds(dialect: str):
    """started_at to finished_at in seconds, in SQL: one aggregate query whatever the number of jobs."""
    if dialect == "sqlite":  # datetimes are ISO text there
        return (func.julianday(TrainingJob.finished_at) - func.julianday(TrainingJob.started_at)) * 86400.0
    return extract("epoch", TrainingJob.finished_at - TrainingJob.started_at)


async def durations(session: AsyncSession) -> dict[str, Durations]:
    seconds = _run_seconds(session.bind.dialect.name).label("seconds")
    runs = (
        select(TrainingJob.state, seconds)
        .where(
            TrainingJob.state.in_(FINISHED), TrainingJob.started_at.is_not(None), TrainingJob.finished_at.is_not(None)
        )
        .subquery()
    )
    buckets = [func.sum(case((runs.c.seconds <= bound, 1), else_=0)) for bound in DURATION_BUCKETS]
    query = select(runs.c.state, func.count(), func.sum(runs.c.seconds), *buckets).group_by(runs.c.state)
    found = {
        state: Durations(le=tuple(int(n or 0) for n in le), count=count, total_s=float(total or 0.0))
        for state, count, total, *le in (await session.execute(query)).all()
    }
    empty = Durations(le=(0,) * len(DURATION_BUCKETS), count=0, total_s=0.0)
    return {state.value: found.get(state.value, empty) for state in FINISHED}


async def recent(session: AsyncSession, *, recent_s: float) -> list[RecentJob]:
    since = utcnow() - timedelta(seconds=recent_s)
    query = (
        select(TrainingJob)
        .where(or_(TrainingJob.state == JobState.running, TrainingJob.finished_at >= since))
        .order_by(TrainingJob.created_at.desc())
        .limit(MAX_RECENT)
    )
    return [
        RecentJob(
            id=job.id,
            model_name=job.model_name,
            state=job.state,
            step=job.step,
            total_steps=job.total_steps,
            loss=job.loss,
            eval_loss=job.eval_loss,
        )
        for job in (await session.execute(query)).scalars()
    ]


async def read(session: AsyncSession, *, recent_s: float) -> JobStats:
    return JobStats(
        counts=await counts(session),
        durations=await durations(session),
        recent=await recent(session, recent_s=recent_s),
    )


async def run(
    sessions: async_sessionmaker[AsyncSession],
    *,
    interval_s: float,
    recent_s: float,
    on_read: Callable[[JobStats], None],
) -> None:
    """Reads every ``interval_s`` until cancelled, so that a Prometheus scrape never waits on the database; a
    failed read (database down) keeps the last numbers and is retried."""
    while True:
        try:
            async with sessions() as session:
                on_read(await read(session, recent_s=recent_s))
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("job statistics refresh failed", extra={"error": repr(exc)})
        await asyncio.sleep(interval_s)
