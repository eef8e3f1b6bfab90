"""The feedback service's app factory: ``uvicorn llmops_feedback.app:create_app --factory``."""

import asyncio
import contextlib
import logging
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from llmops_common import sql, tracing
from llmops_common.app import install_common
from llmops_common.contracts.serving import INFERENCE_TOKEN_ENV
from llmops_common.logging import configure_logging
from llmops_feedback import controller, db
from llmops_feedback.datasets.views import router as datasets_router
from llmops_feedback.evaluation import rubrics, sampler
from llmops_feedback.evaluation.gate_views import router as gate_router
from llmops_feedback.evaluation.queue import make_celery
from llmops_feedback.evaluation.views import router as evaluation_router
from llmops_feedback.experiments.views import router as experiments_router
from llmops_feedback.metrics import FeedbackMetrics
from llmops_feedback.platform import GatewayRoutes, Registry, Trainer
from llmops_feedback.quality import refresher
from llmops_feedback.quality.views import router as quality_router
from llmops_feedback.ratings import sweeper
from llmops_feedback.ratings.views import router as ratings_router
from llmops_feedback.records.views import router as records_router
from llmops_feedback.retraining.views import config_router as retraining_config_router
from llmops_feedback.retraining.views import router as retraining_router
from llmops_feedback.settings import FeedbackSettings
from llmops_feedback.state import FeedbackState

logger = logging.getLogger(__name__)


def create_app(settings: FeedbackSettings | None = None) -> FastAPI:
    settings = settings or FeedbackSettings()
    configure_logging(level=settings.log_level, json_logs=settings.log_json)
    tracing.configure_tracing("llmops-feedback")  # only with an OTLP endpoint in the environment
    admin_token, ingest_token = settings.admin_token_value(), settings.ingest_token_value()
    if settings.dev_mode:
        logger.warning("dev mode: development secrets are accepted; never run like this in production")
    unknown = sorted(set(settings.eval_online_rubrics) - set(rubrics.RUBRICS))
    if unknown:
        raise ValueError(f"FEEDBACK_EVAL_ONLINE_RUBRICS names unknown rubrics: {', '.join(unknown)}")
    registry = CollectorRegistry()
    metrics = FeedbackMetrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = sql.make_engine(settings.database_url, settings.database_timeouts)
        await db.migrate(engine, settings.database_timeouts)
        hooks = tracing.httpx_event_hooks()  # traceparent on every call out; none with tracing off
        http = httpx.AsyncClient(timeout=10.0, event_hooks=hooks)
        gateway = registry_http = trainer_http = None
        if settings.gateway_url:
            token = settings.gateway_admin_token or admin_token  # one admin token for the platform by default
            gateway = httpx.AsyncClient(
                base_url=settings.gateway_url,
                headers={"authorization": f"Bearer {token}"},
                timeout=10.0,
                event_hooks=hooks,
            )
        if settings.mlflow_tracking_uri:
            registry_http = httpx.AsyncClient(
                base_url=settings.mlflow_tracking_uri.rstrip("/"), timeout=10.0, event_hooks=hooks
            )
        if settings.trainer_url:
            token = settings.trainer_token or admin_token
            trainer_http = httpx.AsyncClient(
                base_url=settings.trainer_url,
                headers={"authorization": f"Bearer {token}"},
                timeout=30.0,
                event_hooks=hooks,
            )
        app.state.feedback = state = FeedbackState(
            settings=settings,
            admin_token=admin_token,
            ingest_token=ingest_token,
            engine=engine,
            sessions=sql.make_sessionmaker(engine),
            metrics=metrics,
            routes=GatewayRoutes(
                gateway, upstreams=http, upstream_keys={INFERENCE_TOKEN_ENV: settings.inference_serving_token}
            ),
            registry=Registry(registry_http),
            trainer=Trainer(trainer_http),
            celery=make_celery(settings) if settings.eval_redis_url else None,
        )
        tasks = [
            asyncio.create_task(refresher.run(state), name="quality-refresher"),
            asyncio.create_task(sweeper.run(state), name="pending-rating-sweeper"),
        ]
        if state.celery is not None and settings.eval_sample_rate > 0:
            tasks.append(asyncio.create_task(sampler.run(state, state.celery), name="online-evaluation-sampler"))
        if settings.experiment_controller and settings.gateway_url:  # without a gateway there is nothing to act on
            tasks.append(asyncio.create_task(controller.run(state), name="experiment-controller"))
        logger.info("feedback service started")
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for client in (gateway, registry_http, trainer_http, http):
                if client is not None:
                    await client.aclose()
            if state.celery is not None:
                state.celery.close()  # its broker connections
            await engine.dispose()

    app = FastAPI(title="LLMOps feedback", version="0.1.0", lifespan=lifespan)

    async def database_ready() -> None:
        await sql.ping(app.state.feedback.engine)

    install_common(app, registry=registry, readiness={"database": database_ready})
    for router in (
        records_router,
        ratings_router,
        quality_router,
        datasets_router,
        experiments_router,
        retraining_router,
        retraining_config_router,
        evaluation_router,
        gate_router,
    ):
        app.include_router(router)
    return app
