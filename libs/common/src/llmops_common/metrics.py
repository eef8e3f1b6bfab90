"""Prometheus helpers: a registry per app and the ``/metrics`` route."""

import os

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.responses import Response

# The *_created series double the output and nobody graphs them.
disable_created_metrics()

# Latency buckets from sub-millisecond (gateway overhead) to minutes (long generations).
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)


class _CustomCollectors:
    """The app's own collectors (values computed at scrape time, e.g. from a database), without its plain
    metrics, whose values the multiprocess files already hold for every worker."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self):
        # prometheus_client has no public way to list a registry's collectors.
        for collector in list(self._registry._collector_to_names):
            if not isinstance(collector, MetricWrapperBase):
                yield from collector.collect()


def exposed_registry(registry: CollectorRegistry) -> CollectorRegistry:
    """What ``/metrics`` shows: the app's registry, or with several worker processes (``PROMETHEUS_MULTIPROC_DIR``
    set, see ``llmops_common.serve``) every worker's values merged from the shared directory, plus the app's
    custom collectors, whichever worker answers the scrape."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return registry
    merged = CollectorRegistry()
    MultiProcessCollector(merged)
    merged.register(_CustomCollectors(registry))
    return merged


def metrics_router(registry: CollectorRegistry) -> APIRouter:
    router = APIRouter()
    registry = exposed_registry(registry)

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
