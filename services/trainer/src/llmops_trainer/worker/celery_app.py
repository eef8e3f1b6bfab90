"""The Celery app: Redis broker and result backend, one job per worker slot, messages acknowledged after the job."""

from celery import Celery

from llmops_common import tracing
from llmops_trainer.jobs.schemas import JobSpec
from llmops_trainer.settings import TrainerSettings

TRAIN_TASK = "llmops_trainer.train"


def make_celery(settings: TrainerSettings, *, results: bool = True) -> Celery:
    """``results=False`` for the API, which only sends: job state lives in SQL, and a sender with a result backend
    would subscribe to every job's result channel and never read it."""
    prefix = {"global_keyprefix": settings.redis_key_prefix}
    app = Celery(
        "llmops_trainer",
        broker=settings.redis_url,
        backend=settings.redis_url if results else None,
        set_as_current=False,
    )
    app.conf.update(
        task_default_queue=settings.queue,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A job's message is acknowledged when the job ends, so a worker that dies mid-job does not lose it; and a
        # worker holds one message per slot, so queued jobs wait in Redis (in order) for any free worker.
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_concurrency,
        worker_max_tasks_per_child=settings.worker_max_jobs_per_child or None,
        # A pool child that dies (OOM, kill -9) is acknowledged as failed: the heartbeat reaper requeues its job.
        task_reject_on_worker_lost=False,
        broker_transport_options={**prefix, "visibility_timeout": settings.visibility_timeout_s},
        result_backend_transport_options=prefix,
        result_expires=7 * 86_400,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


def dispatch(app: Celery, *, job_id: str, spec: JobSpec, queue: str) -> str:
    """Queues a job's message: its id, and its resolved spec as JSON (the worker validates it back into a
    ``JobSpec``). Returns the task id. Blocking (call it from a thread in async code).

    The caller's trace context goes in the message's headers (W3C ``traceparent``), not its arguments: a worker of
    the previous version ignores a header it does not know, where an argument it does not know fails the task."""
    return app.send_task(
        TRAIN_TASK,
        args=[job_id],
        kwargs={"spec": spec.model_dump(mode="json")},
        queue=queue,
        headers=tracing.carrier() or None,
    ).id
