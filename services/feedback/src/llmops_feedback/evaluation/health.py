"""The evaluation worker's health and metrics endpoints: the shared worker server, pinging its broker."""

import redis
from prometheus_client import Gauge

from llmops_common.worker_health import WorkerHealthServer
from llmops_feedback.settings import FeedbackSettings

READY = Gauge("llmops_eval_worker_ready", "1 while the evaluation worker consumes from the broker")


def health_server(settings: FeedbackSettings, *, port: int | None = None) -> WorkerHealthServer:
    broker = redis.Redis.from_url(settings.eval_redis_url, socket_timeout=2, socket_connect_timeout=2)
    port = settings.eval_worker_port if port is None else port
    return WorkerHealthServer(host=settings.eval_worker_host, port=port, ping_broker=broker.ping, ready_gauge=READY)
