"""Stored datasets: one row per distinct canonical dataset, shared by every job trained on it."""

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.sql import utcnow
from llmops_trainer.datasets.validate import PreparedDataset
from llmops_trainer.jobs.models import TrainingDataset


async def store(session: AsyncSession, *, dataset: PreparedDataset) -> None:
    """Keeps the dataset unless a dataset with the same hash (the same examples) is stored already. Commits."""
    if await session.get(TrainingDataset, dataset.sha256) is not None:
        return
    session.add(
        TrainingDataset(
            sha256=dataset.sha256, content=dataset.canonical, examples=len(dataset.examples), created_at=utcnow()
        )
    )
    try:
        await session.commit()
    except IntegrityError:  # another request stored the same examples a moment ago
        await session.rollback()


async def content(session: AsyncSession, *, sha256: str) -> bytes | None:
    return (await session.execute(select(TrainingDataset.content).where(TrainingDataset.sha256 == sha256))).scalar()
