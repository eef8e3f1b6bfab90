"""The gateway's app factory: ``uvicorn llmops_gateway.app:create_app --factory`` (``python -m llmops_gateway``
runs the same app with production server settings)."""

import gc
import logging
import ssl
from contextlib import asynccontextmanager

import redis.asyncio as redis
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from llmops_common import sql
from llmops_common.app import install_common
from llmops_common.http import make_http_session
from llmops_common.logging import configure_logging
from llmops_gateway import db
from llmops_gateway.feedback.client import RatingsForwarder
from llmops_gateway.feedback.views import router as feedback_router
from llmops_gateway.keys.auth import KeyAuthenticator
from llmops_gateway.keys.views import router as keys_router
from llmops_gateway.metrics import GatewayMetrics
from llmops_gateway.proxy import views as proxy_views
from llmops_gateway.proxy.accounting import Accounting
from llmops_gateway.proxy.client import UpstreamClient
from llmops_gateway.proxy.pipeline import CompletionPipeline
from llmops_gateway.proxy.quota import QuotaCheck
from llmops_gateway.proxy.upstream import Upstreams
from llmops_gateway.quotas.limiter import QuotaLimiter
from llmops_gateway.rag.client import RetrieverClient
from llmops_gateway.rag.service import Retrieval
from llmops_gateway.requestlog.factory import make_sink
from llmops_gateway.requestlog.feedback_sink import FeedbackSink
from llmops_gateway.routing.breaker import CircuitBreakers
from llmops_gateway.routing.service import RouteTable
from llmops_gateway.routing.views import router as routes_router
from llmops_gateway.settings import GatewaySettings
from llmops_gateway.state import GatewayState

logger = logging.getLogger(__name__)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
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
        http = make_http_session()
        request_log = make_sink(settings, metrics)
        await request_log.start()
        redis_client = redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
        app.state.gateway = state = GatewayState(
            admin_token=admin_token,
            engine=engine,
            sessions=sessions,
            redis=redis_client,
            http=http,
            upstream=UpstreamClient(
                connect_timeout_s=settings.upstream_connect_timeout_s,
                read_timeout_s=settings.upstream_read_timeout_s,
                max_in_flight=settings.upstream_max_connections,
                ssl_context=_upstream_tls(settings),
            ),
            authenticator=KeyAuthenticator(sessions, key_secret=key_secret, ttl_s=settings.key_cache_ttl_s),
            routes=RouteTable(sessions, ttl_s=settings.route_cache_ttl_s),
            limiter=QuotaLimiter(redis_client, prefix=settings.redis_key_prefix, lease_s=settings.quota_lease_s),
            request_log=request_log,
            ratings=_ratings(settings, http, request_log),
        )
        app.state.pipeline = _pipeline(settings, state, metrics, http)
        # Everything made so far lives as long as the process: keep the collector from walking it again and
        # again (full collections over it were the long tail of p99 under load).
        gc.freeze()
        logger.info("gateway started")
        try:
            yield
        finally:
            await state.aclose()

    app = FastAPI(title="LLMOps gateway", version="0.1.0", lifespan=lifespan)

    async def database_ready() -> None:
        await sql.ping(app.state.gateway.engine)

    async def redis_ready() -> None:
        await app.state.gateway.redis.ping()

    # Without Redis only keys with limits are refused (or served unmetered, by setting): degraded, not down.
    install_common(app, registry=registry, readiness={"database": database_ready}, degraded_by={"redis": redis_ready})
    app.router.routes[:0] = proxy_views.routes  # first: matched before every other route
    app.include_router(proxy_views.router)
    app.include_router(feedback_router)
    app.include_router(keys_router)
    app.include_router(routes_router)
    proxy_views.document(app)
    return app


def _ratings(settings: GatewaySettings, http, request_log) -> RatingsForwarder | None:
    """Ratings go to the feedback service; they wait in the request log's spool while it is down (with the
    feedback sink: without it the feedback service gets no records, and a rating there would never attach)."""
    if not settings.feedback_url:
        return None
    return RatingsForwarder(
        http,
        url=settings.feedback_url,
        token=settings.feedback_token,
        timeout_s=settings.feedback_rating_timeout_s,
        spool=request_log if isinstance(request_log, FeedbackSink) else None,
    )


def _upstream_tls(settings: GatewaySettings) -> ssl.SSLContext | None:
    """None: the client's default (the system's CAs)."""
    if not settings.upstream_ca_bundle:
        return None
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=settings.upstream_ca_bundle)
    return context


def _pipeline(settings: GatewaySettings, state: GatewayState, metrics: GatewayMetrics, http) -> CompletionPipeline:
    """The completion stages, each given only what it uses."""
    quota = QuotaCheck(
        state.limiter,
        metrics,
        failure_mode=settings.quota_failure_mode,
        default_max_tokens=settings.default_max_tokens_reserve,
    )
    breakers = CircuitBreakers(
        threshold=settings.breaker_failure_threshold,
        cooldown_s=settings.breaker_cooldown_s,
        on_change=lambda route, variant, breaker: metrics.breaker_state.labels(route, variant).set(breaker),
    )
    retriever = None
    if settings.retriever_url:
        retriever = RetrieverClient(
            http, url=settings.retriever_url, token=settings.retriever_token, timeout_s=settings.retriever_timeout_s
        )
    return CompletionPipeline(
        authenticator=state.authenticator,
        routes=state.routes,
        quota=quota,
        retrieval=Retrieval(retriever, metrics),
        upstreams=Upstreams(state.upstream, breakers, metrics),
        accounting=Accounting(metrics, quota, state.request_log),
        max_body_bytes=settings.max_body_bytes,
    )
