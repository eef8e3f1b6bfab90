"""The training task: claim the job, train, publish to MLflow, report; retry what is transient, fail the rest."""

import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from celery import Celery
from opentelemetry.trace import SpanKind

from llmops_common import tracing
from llmops_trainer.datasets import service as datasets
from llmops_trainer.datasets import validate
from llmops_trainer.jobs import lifecycle
from llmops_trainer.jobs.models import JobState, TrainingJob
from llmops_trainer.jobs.schemas import JobSpec
from llmops_trainer.jobs.service import spec_of
from llmops_trainer.settings import TrainerSettings
from llmops_trainer.training import device, loop, tracking
from llmops_trainer.worker.celery_app import TRAIN_TASK
from llmops_trainer.worker.store import Heartbeat, JobStore

logger = logging.getLogger(__name__)
PROGRESS_FIELDS = ("step", "total_steps", "epoch", "loss", "eval_loss", "eta_s")


@dataclass
class WorkerContext:
    """What a worker process holds across jobs; made in the pool process itself (after the fork)."""

    settings: TrainerSettings
    store: JobStore


class JobHooks:
    """The training loop's view of the job: progress into the heartbeat, metrics into the MLflow run."""

    def __init__(self, beat: Heartbeat, tracker: tracking.Tracker) -> None:
        self.beat, self.tracker = beat, tracker

    def should_stop(self) -> bool:
        return self.beat.should_stop()

    def progress(self, **fields) -> None:
        self.beat.progress.update({k: v for k, v in fields.items() if k in PROGRESS_FIELDS})

    def metrics(self, values: dict[str, float], step: int) -> None:
        self.tracker.metrics(values, step)


def register(app: Celery, settings: TrainerSettings) -> None:
    contexts: list[WorkerContext] = []

    def context() -> WorkerContext:
        if not contexts:
            contexts.append(
                WorkerContext(settings=settings, store=JobStore(settings.database_url, settings.database_timeouts))
            )
        return contexts[0]

    @app.task(name=TRAIN_TASK, bind=True, acks_late=True, max_retries=None)
    def train(task, job_id: str, spec: dict | None = None) -> dict:
        with job_span(task, job_id):
            try:
                return run_job(task, job_id, spec, context())
            finally:
                tracing.flush()  # a pool process may be replaced before the batch processor's next export


def job_span(task, job_id: str):
    """The job's span (tracing on), child of the request that queued it: its ``traceparent`` came as a message
    header, which Celery makes an attribute of the task's request."""
    headers = {
        name: value
        for name in ("traceparent", "tracestate")
        if isinstance(value := getattr(task.request, name, None), str)
    }
    parent = tracing.context_from(headers)
    return tracing.span("train job", kind=SpanKind.CONSUMER, context=parent, attributes={"llmops.job_id": job_id})


def _retrying(fn: Callable, *, tries: int, delay_s: float, stop: Callable[[], bool]):
    """In-process retries of a transient MLflow failure after training: retrying the job would train again."""
    for attempt in range(tries):
        try:
            return fn()
        except Exception as exc:
            if not tracking.is_transient(exc) or attempt == tries - 1 or stop():
                raise
            logger.warning("MLflow unavailable while publishing; retrying", extra={"error": repr(exc)[:300]})
            time.sleep(delay_s * 2**attempt)


def run_job(task, job_id: str, spec: dict | None, ctx: WorkerContext) -> dict:
    """``spec``: the job's ``JobSpec`` as JSON, validated back first thing once the job is claimed (a spec that does
    not validate fails the job instead of leaving it queued). None: a message queued before messages carried it."""
    settings, store = ctx.settings, ctx.store
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        claim = store.call(
            lifecycle.claim,
            job_id=job_id,
            worker=worker,
            task_id=task.request.id,
            stale_after_s=settings.heartbeat_timeout_s,
            max_attempts=settings.max_attempts,
        )
    except Exception as exc:  # the database is unreachable: the message must not be consumed for nothing
        logger.warning("could not claim the job; retrying", extra={"job_id": job_id, "error": repr(exc)[:300]})
        raise task.retry(countdown=max(1.0, settings.retry_backoff_s), exc=exc) from exc
    if claim.job is None:
        logger.info("job not started", extra={"job_id": job_id, "reason": claim.reason})
        return {"job_id": job_id, "skipped": claim.reason}
    job = claim.job
    logger.info("job started", extra={"job_id": job.id, "attempt": job.attempt})
    beat = Heartbeat(store, job_id=job.id, attempt=job.attempt, interval_s=settings.heartbeat_interval_s).start()
    for leftover in settings.work_dir.glob(f"{job.id}-*"):  # an earlier attempt's, killed before cleaning up
        shutil.rmtree(leftover, ignore_errors=True)
    work_dir = settings.work_dir / f"{job.id}-{job.attempt}"
    tracker: tracking.Tracker | None = None
    try:
        job_spec = JobSpec.model_validate(spec) if spec is not None else spec_of(job)
        tracker = tracking.Tracker(settings.mlflow_tracking_uri, job_id=job.id, model_name=job_spec.registry.model_name)
        return _train_and_publish(ctx, job, job_spec, beat, tracker, work_dir)
    except Exception as exc:
        if tracker is not None:
            tracker.end("FAILED")
        if beat.lost.is_set():
            return {"job_id": job.id, "lost": True}
        error = f"{exc.__class__.__name__}: {exc}"[:2000]
        if tracking.is_transient(exc) and job.attempt < settings.max_attempts:
            countdown = max(1.0, min(settings.retry_backoff_s * 2 ** (job.attempt - 1), settings.retry_backoff_max_s))
            # The retry message first: a crash right after it leaves a message that finds the job stale and
            # starts it; a crash before it leaves the job running without a heartbeat, for the reaper.
            retry = task.retry(countdown=countdown, exc=exc, throw=False)
            store.call_with_retries(
                lifecycle.requeue,
                job_id=job.id,
                attempt=job.attempt,
                error=f"{error}; retrying in {countdown:.0f}s (attempt {job.attempt + 1} of {settings.max_attempts})",
            )
            logger.warning("job failed transiently; retrying", extra={"job_id": job.id, "error": error})
            raise retry from exc
        if tracking.is_transient(exc):
            error += f" (gave up after {job.attempt} attempts)"
        logger.exception("job failed", extra={"job_id": job.id})
        store.call_with_retries(
            lifecycle.finish, job_id=job.id, attempt=job.attempt, state=JobState.failed, error=error
        )
        return {"job_id": job.id, "state": "failed", "error": error}
    finally:
        beat.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


def _base_model_source(settings: TrainerSettings, name: str) -> str:
    source = settings.resolve_base_model(name)
    if name not in settings.base_models:
        from llmops_models import prepare

        prepare.prepare(dest=prepare.bundled_model_dir(settings.model_cache_dir), progress=False)  # once; then a check
    return source


def _train_and_publish(ctx: WorkerContext, job: TrainingJob, spec: JobSpec, beat: Heartbeat, tracker, work_dir) -> dict:
    settings, store = ctx.settings, ctx.store
    lora, training = spec.lora, spec.training
    plan = device.plan(settings.device, training.quantization, threads=settings.torch_threads)
    source = _base_model_source(settings, spec.base_model)
    examples = validate.load_canonical(store.call(datasets.content, sha256=job.dataset_sha256))
    train, evaluation = validate.split(examples, eval_fraction=training.eval_fraction, seed=training.seed)
    params = {
        "job_id": job.id,
        "attempt": job.attempt,
        "base_model": spec.base_model,
        "device": plan.device,
        "dtype": plan.dtype,
        **{f"lora_{k}": v for k, v in lora.model_dump().items()},
        **training.model_dump(),
        "dataset_sha256": job.dataset_sha256,
        "dataset_examples": len(examples),
        "dataset_train": len(train),
        "dataset_eval": len(evaluation),
        "dataset_source": job.dataset_info.get("source"),
    }
    tags = {tracking.BASE_MODEL_TAG: spec.base_model, tracking.DATASET_TAG: job.dataset_sha256}
    experiment_id, run_id = tracker.start(params=params, tags=tags, previous_run_id=job.mlflow_run_id)
    store.call(
        lifecycle.update_running,
        job_id=job.id,
        attempt=job.attempt,
        mlflow_experiment_id=experiment_id,
        mlflow_run_id=run_id,
    )
    outcome = loop.run(
        source=source,
        train_examples=train,
        eval_examples=evaluation,
        lora=lora,
        training=training,
        device_plan=plan,
        out_dir=work_dir,
        hooks=JobHooks(beat, tracker),
    )
    try:
        beat.beat_once()  # the last word on cancel and ownership, and the final progress
    except Exception:  # the final write below retries; this one is only a check
        logger.warning("final heartbeat failed", exc_info=True, extra={"job_id": job.id})
    if beat.lost.is_set():
        tracker.end("KILLED")
        return {"job_id": job.id, "lost": True}
    if outcome.stopped or beat.cancelled.is_set():
        tracker.end("KILLED")
        store.call_with_retries(
            lifecycle.finish, job_id=job.id, attempt=job.attempt, state=JobState.cancelled, error=None
        )
        logger.info("job cancelled", extra={"job_id": job.id, "step": outcome.steps})
        return {"job_id": job.id, "state": "cancelled", "steps": outcome.steps}

    summary = {
        "train_runtime_s": outcome.runtime_s,
        "train_tokens": float(outcome.tokens),
        "train_tokens_per_s": outcome.tokens_per_s,
        **{f"examples_{k}": float(v) for k, v in outcome.counts.items()},
    }
    tracker.metrics(summary, outcome.steps)
    version = _retrying(
        lambda: tracker.publish(outcome.adapter_dir, alias=spec.registry.alias, version_tags=tags),
        tries=5,
        delay_s=2.0,
        stop=beat.should_stop,
    )
    tracker.end("FINISHED")
    store.call_with_retries(
        lifecycle.finish,
        job_id=job.id,
        attempt=job.attempt,
        state=JobState.succeeded,
        registered_version=version,
        step=outcome.steps,
        eval_loss=outcome.eval_loss,
        error=None,
    )
    logger.info(
        "job succeeded",
        extra={
            "job_id": job.id,
            "version": version,
            "steps": outcome.steps,
            "tokens_per_s": round(outcome.tokens_per_s, 1),
        },
    )
    return {"job_id": job.id, "state": "succeeded", "version": version, "run_id": run_id}
