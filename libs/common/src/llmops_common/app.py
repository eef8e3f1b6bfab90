"""Pieces every service's app factory uses."""

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from llmops_common import tracing
from llmops_common.errors import install_error_handlers
from llmops_common.health import ReadinessCheck, health_router
from llmops_common.metrics import metrics_router
from llmops_common.middleware import HeaderLimitMiddleware, RequestIdMiddleware


def install_common(
    app: FastAPI,
    *,
    registry: CollectorRegistry,
    readiness: dict[str, ReadinessCheck],
    degraded_by: dict[str, ReadinessCheck] | None = None,
) -> None:
    """Adds request ids, a limit on header size, OpenAI-format errors, ``/healthz``, ``/readyz`` and ``/metrics``,
    and a span per request when tracing is on (``tracing.configure_tracing`` is called before this).

    Readiness checks are called per probe, so they may reach for ``app.state`` set up in the lifespan.
    """
    app.add_middleware(RequestIdMiddleware)
    if tracing.enabled():  # outside the request id's middleware, so the span can read the id at its end
        app.add_middleware(tracing.TracingMiddleware)
    app.add_middleware(HeaderLimitMiddleware)  # added last: runs first
    install_error_handlers(app)
    app.include_router(health_router(readiness, degraded_by=degraded_by))
    app.include_router(metrics_router(registry))
