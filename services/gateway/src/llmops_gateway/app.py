"""The gateway's app factory: ``uvicorn llmops_gateway.app:create_app --factory`` (``python -m llmops_gateway``
runs the same app with production server settings)."""

import gc
import logging
import ssl
from contextlib import asynccontextmanager

import redis.asyncio as redis
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from llmops_common import sql, tracing
from llmops_common.app import install_common
from llmops_common.http import make_http_session
from llmops_common.logging import configure_logging
from llmops_gateway import console, db
from llmops_gateway.admin.views import router as admin_router
from llmops_gateway.batches.views import internal as batch_workers_router
from llmops_gateway.batches.views import router as batches_router
from llmops_gateway.config.views import router as config_router
from llmops_gateway.embeddings.pipeline import EmbeddingPipeline, RetrieverEmbeddings
from llmops_gateway.embeddings.views import router as embeddings_router
from llmops_gateway.feedback.client import RatingsForwarder
from llmops_gateway.feedback.views import router as feedback_router
from llmops_gateway.files.service import FilesLimits
from llmops_gateway.files.store import ObjectStore
from llmops_gateway.files.views import router as files_router
from llmops_gateway.keys.auth import KeyAuthenticator
from llmops_gateway.keys.lockout import FailedAuthLimiter, LockoutMetrics, LockoutPolicy
from llmops_gateway.keys.views import router as keys_router
from llmops_gateway.metrics import GatewayMetrics
from llmops_gateway.prompts.registry import PromptRegistry
from llmops_gateway.prompts.stage import PromptStage
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
from llmops_gateway.settings import GatewaySettings, QuotaFailureMode
from llmops_gateway.spend.alerts import BudgetAlerts
from llmops_gateway.spend.prices import PriceTable
from llmops_gateway.spend.recorder import SpendRecorder
from llmops_gateway.spend.views import router as spend_router
from llmops_gateway.state import GatewayState
from llmops_gateway.teams.views import router as teams_router

logger = logging.getLogger(__name__)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    configure_logging(level=settings.log_level, json_logs=settings.log_json)
    tracing.configure_tracing("llmops-gateway")  # only with an OTLP endpoint in the environment
    # Refuse to start with missing or default secrets outside dev mode, before opening anything.
    admin_token, key_secret = settings.admin_token_value(), settings.key_secret_value()
    if settings.dev_mode:
        logger.warning("dev mode: development secrets are accepted; never run like this in production")
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    metrics.budget_alert_share.set(settings.budget_alert_share)
    lockout_metrics = LockoutMetrics(registry)

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
                answer_timeout_s=settings.upstream_answer_timeout_s,
                max_answer_bytes=settings.upstream_max_answer_bytes,
                max_stream_bytes=settings.upstream_max_stream_bytes,
                max_in_flight=settings.upstream_max_connections,
                ssl_context=_upstream_tls(settings),
            ),
            authenticator=KeyAuthenticator(
                sessions,
                key_secret=key_secret,
                ttl_s=settings.key_cache_ttl_s,
                batch_token=settings.batch_token,
                previous_key_secrets=settings.previous_key_secrets(),
                lockout=_lockout(settings, redis_client, lockout_metrics),
            ),
            routes=RouteTable(sessions, ttl_s=settings.route_cache_ttl_s),
            limiter=QuotaLimiter(redis_client, prefix=settings.redis_key_prefix, lease_s=settings.quota_lease_s),
            request_log=request_log,
            ratings=_ratings(settings, http, request_log),
            files=ObjectStore(settings.files_url),
            settings=settings,
            prices=PriceTable(sessions, ttl_s=settings.route_cache_ttl_s),
            spend=SpendRecorder(sessions, interval_s=settings.spend_flush_interval_s),
            alerts=BudgetAlerts(
                redis_client,
                http,
                prefix=settings.redis_key_prefix,
                share=settings.budget_alert_share,
                webhook_url=settings.budget_alert_webhook_url,
                currency=settings.currency,
            ),
            prompts=PromptRegistry(settings.mlflow_url, ttl_s=settings.prompt_cache_ttl_s, metrics=metrics),
        )
        state.prompts.start()
        app.state.files_limits = FilesLimits(
            max_bytes=settings.files_max_bytes,
            max_lines=settings.batch_max_lines,
            shard_lines=settings.batch_shard_lines,
            default_max_tokens=settings.default_max_tokens_reserve,
        )
        quota, upstreams = _shared_stages(settings, state, metrics)
        app.state.pipeline = _pipeline(settings, state, metrics, http, quota, upstreams)
        app.state.embeddings = _embeddings(settings, state, metrics, quota, upstreams)
        if settings.console_enabled:
            app.state.console = console.make_state(
                settings,
                redis=redis_client,
                http=http,
                admin_token=admin_token,
                sign_in_limiter=_lockout(settings, redis_client, lockout_metrics, console=True),
            )
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
    app.include_router(embeddings_router)
    app.include_router(files_router)
    app.include_router(batches_router)
    app.include_router(batch_workers_router)
    app.include_router(feedback_router)
    app.include_router(keys_router)
    app.include_router(routes_router)
    app.include_router(config_router)
    app.include_router(teams_router)
    app.include_router(spend_router)
    app.include_router(admin_router)
    if settings.console_enabled:
        console.install(app)
    proxy_views.document(app)
    return app


def _lockout(
    settings: GatewaySettings, client: redis.Redis, metrics: LockoutMetrics, *, console: bool = False
) -> FailedAuthLimiter:
    """The lockout of API keys and admin tokens, or (``console``) of the console's sign-in: one mechanism, the
    console's with its own limit and window and no key prefixes (it finds a client's address itself)."""
    fail_open = settings.quota_failure_mode is QuotaFailureMode.open
    if console:
        policy = LockoutPolicy(
            limit=settings.console_signin_max_failures,
            prefix_limit=0,
            window_s=settings.console_signin_window_s,
            fail_open=fail_open,
        )
    else:
        policy = LockoutPolicy(
            limit=settings.auth_failure_limit,
            prefix_limit=settings.auth_failure_prefix_limit,
            window_s=settings.auth_failure_window_s,
            fail_open=fail_open,
            trusted_proxies=frozenset(settings.trusted_proxies),
        )
    return FailedAuthLimiter(client, prefix=settings.redis_key_prefix, policy=policy, metrics=metrics)


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


def _shared_stages(
    settings: GatewaySettings, state: GatewayState, metrics: GatewayMetrics
) -> tuple[QuotaCheck, Upstreams]:
    """The quota check and the upstreams (with their circuit breakers) every OpenAI endpoint goes through."""
    quota = QuotaCheck(
        state.limiter,
        metrics,
        state.prices,
        state.alerts,
        failure_mode=settings.quota_failure_mode,
        default_max_tokens=settings.default_max_tokens_reserve,
        currency=settings.currency,
    )
    breakers = CircuitBreakers(
        threshold=settings.breaker_failure_threshold,
        cooldown_s=settings.breaker_cooldown_s,
        on_change=lambda route, variant, breaker: metrics.breaker_state.labels(route, variant).set(breaker),
    )
    return quota, Upstreams(state.upstream, breakers, metrics)


def _embeddings(
    settings: GatewaySettings, state: GatewayState, metrics: GatewayMetrics, quota: QuotaCheck, upstreams: Upstreams
) -> EmbeddingPipeline:
    retriever = None
    if settings.retriever_url and settings.retriever_embedding_models:
        retriever = RetrieverEmbeddings(
            url=settings.retriever_url, token=settings.retriever_token, models=settings.retriever_embedding_models
        )
    return EmbeddingPipeline(
        authenticator=state.authenticator,
        routes=state.routes,
        quota=quota,
        upstreams=upstreams,
        metrics=metrics,
        retriever=retriever,
        max_body_bytes=settings.max_body_bytes,
    )


def _pipeline(
    settings: GatewaySettings,
    state: GatewayState,
    metrics: GatewayMetrics,
    http,
    quota: QuotaCheck,
    upstreams: Upstreams,
) -> CompletionPipeline:
    """The completion stages, each given only what it uses."""
    retriever = None
    if settings.retriever_url:
        retriever = RetrieverClient(
            http,
            url=settings.retriever_url,
            token=settings.retriever_token,
            timeout_s=settings.retriever_timeout_s,
            max_answer_bytes=settings.upstream_max_answer_bytes,
        )
    return CompletionPipeline(
        authenticator=state.authenticator,
        routes=state.routes,
        quota=quota,
        retrieval=Retrieval(retriever, metrics),
        prompts=PromptStage(state.prompts),
        upstreams=upstreams,
        accounting=Accounting(metrics, quota, state.request_log, state.prices, state.spend),
        max_body_bytes=settings.max_body_bytes,
        max_event_bytes=settings.upstream_max_event_bytes,
        default_max_tokens=settings.default_max_tokens_reserve,
    )
