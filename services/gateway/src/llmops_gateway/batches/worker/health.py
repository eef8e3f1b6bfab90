"""A batch worker's health and metrics endpoints: the shared worker server, pinging the broker, with a registry of
its own for what its dispatcher sees."""

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge

from llmops_common.worker_health import WorkerHealthServer
from llmops_gateway.settings import GatewaySettings


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ready = Gauge("llmops_batch_worker_ready", "1 while the worker consumes shards", registry=self.registry)
        self.batches = Gauge(
            "llmops_batch_batches",
            "Batches by status, as the dispatcher last read them",
            ("status",),
            registry=self.registry,
        )
        self.dispatched = Counter(
            "llmops_batch_shards_dispatched",
            "Shards sent as Celery tasks (again: their worker died)",
            ("attempt",),
            registry=self.registry,
        )
        self.finalized = Counter(
            "llmops_batch_batches_finalized", "Batches this worker finalised", registry=self.registry
        )


def health_server(settings: GatewaySettings, metrics: WorkerMetrics, *, port: int | None = None) -> WorkerHealthServer:
    broker = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    return WorkerHealthServer(
        host=settings.batch_worker_host,
        port=settings.batch_worker_port if port is None else port,
        ping_broker=broker.ping,
        ready_gauge=metrics.ready,
        registry=metrics.registry,
        name="batch-worker-health",
    )
