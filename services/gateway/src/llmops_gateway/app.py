"""The gateway's app factory: ``uvicorn llmops_gateway.app:create_app --factory``."""

import asyncio
import gc
import logging
from contextlib import asynccontextmanager

import redis.asyncio as redis
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from llmops_common import sql
from llmops_common.app import install_common
from llmops_common.http import make_http_session
from llmops_common.logging import configure_logging
from llmops_gateway import db
from llmops_gateway.feedback.views import router as feedback_router
from llmops_gateway.keys.auth import KeyAuthenticator
from llmops_gateway.keys.views import router as keys_router
from llmops_gateway.metrics import GatewayMetrics
from llmops_gateway.proxy.client import UpstreamClient
from llmops_gateway.proxy.front import CompletionsFront
from llmops_gateway.proxy.views import router as proxy_router
from llmops_gateway.quotas.limiter import QuotaLimiter
from llmops_gateway.rag.client import RetrieverClient
from llmops_gateway.requestlog.factory import make_sink
from llmops_gateway.routing.breaker import CircuitBreakers
from llmops_gateway.routing.service import RouteTable
from llmops_gateway.routing.views import router as routes_router
from llmops_gateway.settings import GatewaySettings
from llmops_gateway.state import GatewayState

logger = logging.getLogger(__name__)


def create_app(settings: GatewaySettings | None = None) -> CompletionsFront:
    """The gateway: the completion endpoints in front (``proxy.front``), everything else in a FastAPI app."""
    settings = settings or GatewaySettings()
    configure_logging(level=settings.log_level, json_logs=settings.log_json)
    # Refuse to start with missing or default secrets outside dev mode, before opening anything.
    admin_token, key_secret = settings.admin_token_value(), settings.key_secret_value()
    if settings.dev_mode:
        logger.warning("dev mode: development secrets are accepted; never run like this in production")
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = sql.make_engine(settings.database_url)
        await db.migrate(engine)
        sessions = sql.make_sessionmaker(engine)
        redis_client = redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        http = make_http_session()
        upstream = UpstreamClient(
            connect_timeout_s=settings.upstream_connect_timeout_s,
            read_timeout_s=settings.upstream_read_timeout_s,
            max_in_flight=settings.upstream_max_connections,
        )
        request_log = make_sink(settings, metrics)
        await request_log.start()
        app.state.gateway = gw = GatewayState(
            settings=settings,
            admin_token=admin_token,
            engine=engine,
            sessions=sessions,
            redis=redis_client,
            http=http,
            upstream=upstream,
            authenticator=KeyAuthenticator(sessions, key_secret=key_secret, ttl_s=settings.key_cache_ttl_s),
            routes=RouteTable(sessions, ttl_s=settings.route_cache_ttl_s),
            limiter=QuotaLimiter(settings.redis_url, prefix=settings.redis_key_prefix, lease_s=settings.quota_lease_s),
            breakers=CircuitBreakers(
                threshold=settings.breaker_failure_threshold,
                cooldown_s=settings.breaker_cooldown_s,
                on_change=lambda route, variant, state: metrics.breaker_state.labels(route, variant).set(state),
            ),
            metrics=metrics,
            request_log=request_log,
            retriever=RetrieverClient(
                http, url=settings.retriever_url, token=settings.retriever_token, timeout_s=settings.retriever_timeout_s
            )
            if settings.retriever_url
            else None,
        )
        # Everything made so far lives as long as the process: keep the collector from walking it again and
        # again (full collections over it were the long tail of p99 under load).
        gc.freeze()
        metrics_flusher = asyncio.create_task(metrics.flush_periodically(), name="metrics-flusher")
        logger.info("gateway started")
        try:
            yield
        finally:
            metrics_flusher.cancel()
            metrics.flush()
            await gw.authenticator.aclose()
            await gw.limiter.aclose()  # pending quota corrections
            await request_log.aclose()
            await upstream.aclose()
            await http.close()
            await redis_client.aclose()
            await engine.dispose()

    app = FastAPI(title="LLMOps gateway", version="0.1.0", lifespan=lifespan)

    async def database_ready() -> None:
        await sql.ping(app.state.gateway.engine)

    async def redis_ready() -> None:
        await app.state.gateway.redis.ping()

    # Without Redis only keys with limits are refused (or served unmetered, by setting): degraded, not down.
    install_common(app, registry=registry, readiness={"database": database_ready}, degraded_by={"redis": redis_ready})
    app.include_router(proxy_router)
    app.include_router(feedback_router)
    app.include_router(keys_router)
    app.include_router(routes_router)
    return CompletionsFront(app)
