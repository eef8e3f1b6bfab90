"""The trainer's job API: ``uvicorn llmops_trainer.app:create_app --factory``. Workers: ``python -m llmops_trainer.worker``."""

import asyncio
import contextlib
import logging
from contextlib import asynccontextmanager

import redis.asyncio as redis
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from llmops_common import sql, tracing
from llmops_common.app import install_common
from llmops_common.http import make_http_session
from llmops_common.logging import configure_logging
from llmops_trainer import db
from llmops_trainer.jobs import reaper, stats
from llmops_trainer.jobs.views import router as jobs_router
from llmops_trainer.metrics import TrainerMetrics
from llmops_trainer.settings import TrainerSettings
from llmops_trainer.state import TrainerState
from llmops_trainer.worker.celery_app import make_celery

logger = logging.getLogger(__name__)


def create_app(settings: TrainerSettings | None = None) -> FastAPI:
    settings = settings or TrainerSettings()
    configure_logging(level=settings.log_level, json_logs=settings.log_json)
    tracing.configure_tracing("llmops-trainer")  # only with an OTLP endpoint in the environment
    admin_token = settings.admin_token_value()
    if settings.dev_mode:
        logger.warning("dev mode: development secrets are accepted; never run like this in production")
    registry = CollectorRegistry()
    metrics = TrainerMetrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = sql.make_engine(settings.database_url, settings.database_timeouts)
        await db.migrate(engine, settings.database_timeouts)
        http = make_http_session(read_timeout_s=settings.feedback_timeout_s)
        app.state.trainer = state = TrainerState(
            settings=settings,
            admin_token=admin_token,
            engine=engine,
            sessions=sql.make_sessionmaker(engine),
            celery=make_celery(settings, results=False),
            redis=redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5),
            http=http,
            metrics=metrics,
        )
        reaping = asyncio.create_task(
            reaper.run(
                state.sessions,
                interval_s=settings.reaper_interval_s,
                timeout_s=settings.heartbeat_timeout_s,
                max_attempts=settings.max_attempts,
                dispatch=state.dispatch,
                on_pass=metrics.on_reaper_pass,
            ),
            name="job-reaper",
        )
        refreshing = asyncio.create_task(
            stats.run(
                state.sessions,
                interval_s=settings.metrics_refresh_s,
                recent_s=settings.metrics_recent_s,
                on_read=metrics.on_stats,
            ),
            name="job-stats",
        )
        logger.info("trainer API started")
        try:
            yield
        finally:
            for task in (reaping, refreshing):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await http.close()
            await state.redis.aclose()
            await asyncio.to_thread(state.celery.close)
            await engine.dispose()

    app = FastAPI(title="LLMOps trainer", version="0.1.0", lifespan=lifespan)

    async def database_ready() -> None:
        await sql.ping(app.state.trainer.engine)

    async def broker_ready() -> None:
        await app.state.trainer.redis.ping()

    install_common(app, registry=registry, readiness={"database": database_ready, "broker": broker_ready})
    app.include_router(jobs_router)
    return app
