"""A batch worker: ``python -m llmops_gateway.batches.worker`` (settings from ``GATEWAY_*``, like the gateway).

A Celery worker on the batch queue (``GATEWAY_BATCH_QUEUE`` on the Redis of ``GATEWAY_REDIS_URL``, the broker the
trainer's workers use) with ``GATEWAY_BATCH_WORKER_CONCURRENCY`` pool processes, each running one shard at a time,
and the dispatcher in a thread of the main process.

Why the worker is part of the gateway package, not a service of its own: it executes lines through the gateway's
serving path and reads and writes the gateway's own tables (batches, shards, files) with the gateway's models. As
another package it would have to import the gateway's (which no service may) or copy them. It is a separate
process, image command and Deployment, so it scales and fails apart from the gateway.
"""

import asyncio
import ctypes
import functools
import logging
import os
import signal
import socket
import sys
import threading

from celery import signals

from llmops_common.logging import configure_logging
from llmops_gateway.batches.worker.celery_app import SHARD_TASK, make_celery
from llmops_gateway.batches.worker.dispatch import Dispatcher
from llmops_gateway.batches.worker.engine import VllmEngine
from llmops_gateway.batches.worker.health import WorkerMetrics, health_server
from llmops_gateway.batches.worker.shard import run_shard
from llmops_gateway.settings import BatchEngine, GatewaySettings

logger = logging.getLogger("llmops_gateway.batches.worker")
_PR_SET_PDEATHSIG = 1


def _die_with_worker(**_) -> None:
    # A pool process whose worker was killed would run its shard on, unsupervised, beside the run that takes over.
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def main() -> None:
    settings = GatewaySettings()
    configure_logging(level=settings.log_level, json_logs=settings.log_json)
    if not settings.batch_token:
        raise SystemExit("GATEWAY_BATCH_TOKEN is required: the gateway accepts batch lines only with it")
    app = make_celery(settings)
    on_engine = settings.batch_engine is BatchEngine.vllm
    # The engine starts with the first shard, in the process that runs shards, and stays for the next ones.
    engine = functools.cache(lambda: VllmEngine(settings) if on_engine else None)

    @app.task(name=SHARD_TASK)
    def shard(batch_id: str, index: int) -> str:
        return asyncio.run(run_shard(settings, batch_id=batch_id, index=index, engine=engine()))

    def send(batch_id: str, index: int) -> None:
        app.send_task(SHARD_TASK, args=[batch_id, index], queue=settings.batch_queue)

    metrics = WorkerMetrics()
    health = health_server(settings, metrics).start()

    def start_dispatcher(**_) -> None:
        # After the pool has forked: its processes must not inherit a running loop and open connections.
        thread = threading.Thread(
            target=lambda: asyncio.run(Dispatcher(settings, send, metrics).forever()),
            name="batch-dispatcher",
            daemon=True,
        )
        thread.start()
        health.mark_ready()

    signals.worker_process_init.connect(_die_with_worker, weak=False)
    signals.worker_ready.connect(start_dispatcher, weak=False)
    signals.setup_logging.connect(lambda **_: None, weak=False)  # our JSON logs, not Celery's
    name = f"batch-{socket.gethostname()}-{os.getpid()}"
    app.worker_main(
        [
            "worker",
            "--loglevel",
            settings.log_level,
            "--queues",
            settings.batch_queue,
            "--hostname",
            name,
            "--concurrency",
            "1" if on_engine else str(settings.batch_worker_concurrency),
            # One engine per worker, holding the GPU, in the main process: vLLM starts processes of its own, which
            # a (daemonic) prefork pool process may not.
            "--pool",
            "solo" if on_engine else "prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


if __name__ == "__main__":
    main()
