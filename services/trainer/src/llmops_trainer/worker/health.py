"""The trainer worker's health and metrics endpoints: the shared worker server, pinging the job broker."""

import redis
from prometheus_client import Gauge

from llmops_common.worker_health import WorkerHealthServer
from llmops_trainer.settings import TrainerSettings

READY = Gauge("llmops_trainer_worker_ready", "1 while the worker consumes jobs from the broker")


def health_server(settings: TrainerSettings, *, port: int | None = None) -> WorkerHealthServer:
    broker = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    port = settings.worker_port if port is None else port
    return WorkerHealthServer(host=settings.worker_host, port=port, ping_broker=broker.ping, ready_gauge=READY)
