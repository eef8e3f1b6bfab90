"""A trainer worker: ``python -m llmops_trainer.worker`` (settings from ``TRAINER_*``, like the API).

A Celery worker consuming the trainer queue with ``TRAINER_WORKER_CONCURRENCY`` pool processes (1: a GPU trains
one job at a time), plus the worker's health and metrics endpoints on ``TRAINER_WORKER_PORT``.
"""

import ctypes
import logging
import os
import signal
import socket
import sys

from celery import signals

from llmops_common import tracing
from llmops_common.logging import configure_logging
from llmops_trainer.settings import TrainerSettings
from llmops_trainer.worker import tasks
from llmops_trainer.worker.celery_app import make_celery
from llmops_trainer.worker.health import health_server

logger = logging.getLogger("llmops_trainer.worker")
_PR_SET_PDEATHSIG = 1


def _die_with_worker(**_) -> None:
    # A pool process whose worker was killed would otherwise train on, unsupervised: its result would land after
    # the job was retried elsewhere. The kernel kills it when its parent dies.
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _preload() -> None:
    """Imports the training stack once, in the worker process, before Celery forks its pool: each job's fresh pool
    process starts with it loaded (copy-on-write) instead of spending seconds importing it. Only imports: no torch
    op runs here, so no thread pool or CUDA context exists to be broken by the fork."""
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers.trainer  # noqa: F401
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # tqdm bars in a log file are noise
    import llmops_trainer.training.loop  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    settings = TrainerSettings()
    configure_logging(level=settings.log_level, json_logs=settings.log_json)
    tracing.configure_tracing("llmops-trainer-worker")  # before the pool forks; only with an OTLP endpoint
    # Bounded MLflow client calls: a job retries itself rather than waiting minutes inside one call. An operator's
    # own MLFLOW_HTTP_* settings win.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(settings.mlflow_timeout_s))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.mlflow_max_retries))
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    _preload()

    app = make_celery(settings)
    tasks.register(app, settings)
    health = health_server(settings).start()

    # Our JSON logs, not Celery's: connecting a receiver makes Celery leave logging alone.
    signals.setup_logging.connect(lambda **_: None, weak=False)
    signals.worker_process_init.connect(_die_with_worker, weak=False)
    signals.worker_ready.connect(lambda **_: health.mark_ready(), weak=False)
    logger.info(
        "trainer worker starting",
        extra={
            "queue": settings.queue,
            "concurrency": settings.worker_concurrency,
            "health": f"http://{settings.worker_host}:{settings.worker_port}",
        },
    )
    try:
        app.worker_main(
            [
                "worker",
                "--queues",
                settings.queue,
                "--concurrency",
                str(settings.worker_concurrency),
                "--prefetch-multiplier",
                "1",
                "--loglevel",
                settings.log_level.upper(),
                "--hostname",
                f"trainer-{os.getpid()}@{socket.gethostname()}",
                # No gossip/mingle/heartbeats between workers: nothing here uses them, and mingle delays the start.
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                *(argv or []),
            ]
        )
    finally:
        health.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
