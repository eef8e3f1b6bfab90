"""The job state machine on a real database: claims fenced by attempt, heartbeats, and the reaper (with real
Celery messages on real Redis) retrying or failing jobs whose worker was lost."""

import asyncio
import base64
import json
import uuid
from datetime import timedelta

import asyncpg
import pytest
import redis

from llmops_common import sql
from llmops_trainer import db
from llmops_trainer.datasets import service as datasets
from llmops_trainer.datasets.validate import prepare
from llmops_trainer.jobs import lifecycle, reaper, stats
from llmops_trainer.jobs import service as jobs
from llmops_trainer.jobs.models import JobState, TrainingJob
from llmops_trainer.jobs.schemas import JobSpec
from llmops_trainer.settings import TrainerSettings
from llmops_trainer.worker.celery_app import dispatch, make_celery

DATA = b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'


@pytest.fixture(params=["sqlite", "postgres"])
async def sessions(request, tmp_path):
    """A fresh trainer database per test, on each backend."""
    if request.param == "sqlite":
        url, drop = f"sqlite+aiosqlite:///{tmp_path / 'trainer.db'}", None
    else:
        server = request.getfixturevalue("postgres_server")
        name = f"trainer_test_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(server.url)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        url, drop = f"{server.async_url.rsplit('/', 1)[0]}/{name}", (server.url, name)
    engine = sql.make_engine(url)
    await db.migrate(engine)
    yield sql.make_sessionmaker(engine)
    await engine.dispose()
    if drop:
        conn = await asyncpg.connect(drop[0])
        await conn.execute(f'DROP DATABASE IF EXISTS "{drop[1]}" WITH (FORCE)')
        await conn.close()


async def _new_job(sessions) -> str:
    dataset = prepare(DATA, max_examples=10)
    async with sessions() as session:
        await datasets.store(session, dataset=dataset)
        job = await jobs.create(
            session,
            spec=JobSpec(registry={"model_name": "m"}),
            base_model="b",
            dataset=dataset,
            source={"kind": "jsonl"},
        )
        return job.id


async def _set(sessions, job_id: str, **values) -> None:
    async with sessions() as session:
        job = await session.get(TrainingJob, job_id)
        for key, value in values.items():
            setattr(job, key, value)
        await session.commit()


async def _get(sessions, job_id: str) -> TrainingJob:
    async with sessions() as session:
        return await session.get(TrainingJob, job_id)


async def _claim(sessions, job_id: str, worker: str, max_attempts: int = 3) -> lifecycle.Claim:
    async with sessions() as session:
        return await lifecycle.claim(
            session, job_id=job_id, worker=worker, task_id=None, stale_after_s=30, max_attempts=max_attempts
        )


async def test_a_jobs_row_gives_back_the_resolved_spec_its_worker_runs(sessions):
    """What the message carries and what a message without it (queued by an older API) falls back to."""
    job_id = await _new_job(sessions)
    async with sessions() as session:
        job = await jobs.get(session, job_id=job_id)
    expected = JobSpec(registry={"model_name": "m"}).resolved(base_model="b")
    assert jobs.spec_of(job) == expected and JobSpec.model_validate(expected.model_dump(mode="json")) == expected
    assert job.hyperparameters == expected.model_dump(include={"lora", "training"})
    assert job.hyperparameters["lora"]["alpha"] == 16  # stored as before: alpha resolved to 2 x r


async def test_a_claim_is_fenced_by_attempt(sessions):
    job_id = await _new_job(sessions)
    first = await _claim(sessions, job_id, "w1")
    assert first.job.state == JobState.running and first.job.attempt == 1
    assert (await _claim(sessions, job_id, "w2")).reason == "job is running on another worker"

    async with sessions() as session:  # the owner's heartbeat sees a cancel request
        await jobs.cancel(session, job_id=job_id)
        assert await lifecycle.heartbeat(session, job_id=job_id, attempt=1, progress={"step": 3}) == (True, True)
    await _set(sessions, job_id, cancel_requested=False, heartbeat_at=sql.utcnow() - timedelta(minutes=5))
    second = await _claim(sessions, job_id, "w2")  # a stale heartbeat: the redelivered message takes over
    assert second.job.attempt == 2 and second.job.worker == "w2" and second.job.step == 0
    async with sessions() as session:  # the first worker, come back, finds it no longer owns the job
        assert await lifecycle.heartbeat(session, job_id=job_id, attempt=1, progress={}) == (False, False)
        assert not await lifecycle.finish(session, job_id=job_id, attempt=1, state=JobState.succeeded)
        assert await lifecycle.finish(session, job_id=job_id, attempt=2, state=JobState.succeeded)
    assert (await _claim(sessions, job_id, "w3")).reason == "job is succeeded"


async def test_a_duplicate_message_leaves_a_live_job_alone(sessions):
    """Redelivery (visibility timeout) of a job that still runs on its last attempt, with a cancel pending."""
    job_id = await _new_job(sessions)
    assert (await _claim(sessions, job_id, "w1", max_attempts=1)).job.attempt == 1
    async with sessions() as session:
        await jobs.cancel(session, job_id=job_id)
    assert (await _claim(sessions, job_id, "w2", max_attempts=1)).reason == "job is running on another worker"
    job = await _get(sessions, job_id)
    assert job.state == JobState.running and job.worker == "w1" and job.cancel_requested


async def test_a_claim_skips_cancelled_and_exhausted_jobs(sessions):
    cancelled, exhausted = await _new_job(sessions), await _new_job(sessions)
    await _set(sessions, cancelled, cancel_requested=True)
    assert (await _claim(sessions, cancelled, "w")).reason == "cancelled before it started"
    assert (await _get(sessions, cancelled)).state == JobState.cancelled
    await _set(sessions, exhausted, attempt=3, error="MlflowException: down; retrying")
    assert (await _claim(sessions, exhausted, "w")).reason == "out of attempts"
    job = await _get(sessions, exhausted)
    assert job.state == JobState.failed and "gave up after 3 attempts" in job.error


async def test_the_reaper_retries_fails_or_cancels_lost_jobs_once(sessions, redis_url):
    settings = TrainerSettings(redis_url=redis_url, redis_key_prefix=f"test:{uuid.uuid4().hex[:8]}:trainer:")
    app = make_celery(settings, results=False)

    async def send(job_id: str, spec: JobSpec) -> str:
        return await asyncio.to_thread(dispatch, app, job_id=job_id, spec=spec, queue=settings.queue)

    lost_at = sql.utcnow() - timedelta(minutes=2)
    retry, give_up, cancel, alive, queued = [await _new_job(sessions) for _ in range(5)]
    await _set(sessions, retry, state=JobState.running, attempt=1, worker="w1", heartbeat_at=lost_at)
    await _set(sessions, give_up, state=JobState.running, attempt=3, worker="w1", heartbeat_at=lost_at)
    await _set(sessions, cancel, state=JobState.running, attempt=1, heartbeat_at=lost_at, cancel_requested=True)
    await _set(sessions, alive, state=JobState.running, attempt=1, heartbeat_at=sql.utcnow())

    async with sessions() as session:
        outcomes = await reaper.reap(session, timeout_s=60, max_attempts=3, dispatch=send)
        assert outcomes == {"requeued": [retry], "failed": [give_up], "cancelled": [cancel]}
        assert await reaper.reap(session, timeout_s=60, max_attempts=3, dispatch=send) == {
            "requeued": [],
            "failed": [],
            "cancelled": [],
        }
        assert (await stats.counts(session))[JobState.running] == 1

    requeued, failed = await _get(sessions, retry), await _get(sessions, give_up)
    assert requeued.state == JobState.queued and requeued.heartbeat_at is None
    assert requeued.error.startswith("worker w1 lost (no heartbeat for 12") and "retrying (2 of 3)" in requeued.error
    assert failed.state == JobState.failed and failed.error.endswith("in attempt 3; gave up")
    assert (await _get(sessions, cancel)).state == JobState.cancelled
    assert (await _get(sessions, alive)).state == JobState.running
    assert (await _get(sessions, queued)).state == JobState.queued

    broker = redis.Redis.from_url(redis_url)
    messages = broker.lrange(f"{settings.redis_key_prefix}{settings.queue}", 0, -1)
    assert len(messages) == 1  # one message for the one retried job, in the private prefix
    message = json.loads(messages[0])
    assert message["headers"]["argsrepr"] == repr([retry])
    # The job's resolved spec travels as JSON and validates back into the model the API accepted.
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    spec = JobSpec.model_validate(kwargs["spec"])
    assert args == [retry] and spec.base_model == "b" and spec.registry.model_name == "m" and spec.lora.alpha == 16
    broker.delete(*broker.scan_iter(match=f"{settings.redis_key_prefix}*"))
    app.close()


async def test_job_statistics_and_their_metrics_come_from_the_table(sessions):
    """What Prometheus sees: jobs by state, a cumulative run-time histogram by final state, the loss of recent
    jobs; the same numbers from any API replica, since they are read from the table."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from llmops_trainer.metrics import TrainerMetrics

    now = sql.utcnow()

    def ago(seconds: float):
        return now - timedelta(seconds=seconds)

    _queued, running, quick, slow, old, unstarted = [await _new_job(sessions) for _ in range(6)]
    await _set(sessions, running, state=JobState.running, started_at=ago(20), step=3, total_steps=10, loss=1.5)
    await _set(
        sessions,
        quick,
        state=JobState.succeeded,
        started_at=ago(100),
        finished_at=ago(55),
        step=10,
        total_steps=10,
        loss=0.25,
        eval_loss=0.5,
    )
    await _set(sessions, slow, state=JobState.failed, started_at=ago(4100), finished_at=ago(100), loss=2.0)
    await _set(sessions, old, state=JobState.succeeded, started_at=ago(7300), finished_at=ago(7200), loss=0.1)
    await _set(sessions, unstarted, state=JobState.cancelled, finished_at=ago(5))  # cancelled while queued

    async with sessions() as session:
        read = await stats.read(session, recent_s=3600)
    assert read.counts == {"queued": 1, "running": 1, "succeeded": 2, "failed": 1, "cancelled": 1}
    succeeded, failed = read.durations["succeeded"], read.durations["failed"]
    assert succeeded.count == 2 and abs(succeeded.total_s - 145) < 1  # 45 s and 100 s
    assert dict(zip(stats.DURATION_BUCKETS, succeeded.le, strict=True))[30.0] == 0
    assert dict(zip(stats.DURATION_BUCKETS, succeeded.le, strict=True))[60.0] == 1
    assert dict(zip(stats.DURATION_BUCKETS, succeeded.le, strict=True))[120.0] == 2
    assert failed.count == 1 and failed.le[stats.DURATION_BUCKETS.index(3600.0)] == 0 and failed.le[-1] == 1
    assert read.durations["cancelled"].count == 0  # never started: no run time
    assert {job.id for job in read.recent} == {running, quick, slow, unstarted}  # not the one finished 2 h ago

    registry = CollectorRegistry()
    metrics = TrainerMetrics(registry)
    assert b"llmops_trainer_jobs{" not in generate_latest(registry)  # nothing until the first read: no false zeros
    metrics.on_stats(read)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert samples[("llmops_trainer_jobs", (("state", "running"),))] == 1
    assert samples[("llmops_trainer_job_duration_seconds_bucket", (("le", "60.0"), ("state", "succeeded")))] == 1
    assert samples[("llmops_trainer_job_duration_seconds_bucket", (("le", "+Inf"), ("state", "succeeded")))] == 2
    assert samples[("llmops_trainer_job_duration_seconds_count", (("state", "failed"),))] == 1
    assert samples[("llmops_trainer_job_duration_seconds_count", (("state", "cancelled"),))] == 0
    labels = (("job_id", running), ("model_name", "m"), ("state", "running"))
    assert samples[("llmops_trainer_job_loss", labels)] == 1.5
    assert samples[("llmops_trainer_job_progress", labels)] == 0.3
    assert samples[("llmops_trainer_job_eval_loss", (("job_id", quick), ("model_name", "m"), ("state", "succeeded")))]
    assert samples[("llmops_trainer_jobs_reaped_total", (("outcome", "failed"),))] == 0  # at zero from the start
