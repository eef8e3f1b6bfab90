"""Pieces every service's app factory uses."""

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

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
    """Adds request ids, a limit on header size, OpenAI-format errors, ``/healthz``, ``/readyz`` and ``/metrics``.

    Readiness checks are called per probe, so they may reach for ``app.state`` set up in the lifespan.
    """
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HeaderLimitMiddleware)  # added last: runs first
    install_error_handlers(app)
    app.include_router(health_router(readiness, degraded_by=degraded_by))
    app.include_router(metrics_router(registry))
