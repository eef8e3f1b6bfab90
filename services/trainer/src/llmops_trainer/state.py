import asyncio
from dataclasses import dataclass

import aiohttp
import redis.asyncio as redis
from celery import Celery
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from llmops_trainer.jobs.schemas import JobSpec
from llmops_trainer.metrics import TrainerMetrics
from llmops_trainer.settings import TrainerSettings
from llmops_trainer.worker.celery_app import dispatch


@dataclass
class TrainerState:
    """Everything one trainer API process holds, built in the lifespan; ``request.app.state.trainer``."""

    settings: TrainerSettings
    admin_token: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    celery: Celery
    redis: redis.Redis
    http: aiohttp.ClientSession
    metrics: TrainerMetrics

    async def dispatch(self, job_id: str, spec: JobSpec) -> str:
        """Queues the job's message (kombu blocks: in a thread). Returns the Celery task id."""
        return await asyncio.to_thread(dispatch, self.celery, job_id=job_id, spec=spec, queue=self.settings.queue)
