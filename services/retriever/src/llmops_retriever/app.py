"""The retriever's app factory: ``uvicorn llmops_retriever.app:create_app --factory``."""

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from llmops_common import tracing
from llmops_common.app import install_common
from llmops_common.logging import configure_logging
from llmops_retriever.collections.views import router as collections_router
from llmops_retriever.documents.views import router as documents_router
from llmops_retriever.embedding.models import EmbeddingModels
from llmops_retriever.embedding.views import router as embeddings_router
from llmops_retriever.metrics import RetrieverMetrics
from llmops_retriever.search.views import router as search_router
from llmops_retriever.settings import RetrieverSettings
from llmops_retriever.state import RetrieverState
from llmops_retriever.store.factory import make_store

logger = logging.getLogger(__name__)


def create_app(settings: RetrieverSettings | None = None) -> FastAPI:
    settings = settings or RetrieverSettings()
    configure_logging(level=settings.log_level, json_logs=settings.log_json)
    tracing.configure_tracing("llmops-retriever")  # only with an OTLP endpoint in the environment
    # Refuse to start with missing or default secrets outside dev mode, before opening anything.
    admin_token, read_token = settings.admin_token_value(), settings.read_token_value()
    if settings.dev_mode:
        logger.warning("dev mode: development secrets are accepted; never run like this in production")
    registry = CollectorRegistry()
    metrics = RetrieverMetrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = make_store(settings, on_build=metrics.on_build)
        await store.start()
        models = EmbeddingModels(settings.embedding_models, batch_size=settings.embed_batch_size)
        # Loaded before the first request (torch's import alone takes seconds); readiness waits for it.
        await models.aget(settings.embedding_model)
        app.state.retriever = RetrieverState(
            settings=settings,
            admin_token=admin_token,
            read_token=read_token,
            store=store,
            models=models,
            metrics=metrics,
            ingest_slots=asyncio.Semaphore(settings.ingest_concurrency),
        )
        logger.info("retriever started", extra={"store": settings.store.value, "model": settings.embedding_model})
        try:
            yield
        finally:
            await store.aclose()

    app = FastAPI(title="LLMOps retriever", version="0.1.0", lifespan=lifespan)

    async def store_ready() -> None:
        await app.state.retriever.store.ping()

    install_common(app, registry=registry, readiness={"store": store_ready})
    for router in (collections_router, documents_router, search_router, embeddings_router):
        app.include_router(router)
    return app
