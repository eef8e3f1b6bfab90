"""Jobs as the API sees them: create, get, list, cancel. Worker-side state changes live in ``lifecycle``."""

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.contracts.adapters import served_name
from llmops_common.errors import APIError
from llmops_common.sql import utcnow
from llmops_trainer.datasets.validate import PreparedDataset
from llmops_trainer.jobs.models import FINISHED, JobState, TrainingJob
from llmops_trainer.jobs.schemas import JobPublic, JobSpec, Progress


def new_job_id() -> str:
    return f"ftjob-{uuid.uuid4().hex}"


async def create(
    session: AsyncSession, *, spec: JobSpec, base_model: str, dataset: PreparedDataset, source: dict
) -> TrainingJob:
    spec = spec.resolved(base_model=base_model)
    job = TrainingJob(
        id=new_job_id(),
        state=JobState.queued,
        created_at=utcnow(),
        base_model=spec.base_model,
        model_name=spec.registry.model_name,
        alias=spec.registry.alias,
        hyperparameters=spec.model_dump(include={"lora", "training"}),
        dataset_sha256=dataset.sha256,
        dataset_info={"source": source, **dataset.info()},
        attempt=0,
        cancel_requested=False,
        step=0,
    )
    session.add(job)
    await session.commit()
    return job


def spec_of(job: TrainingJob) -> JobSpec:
    """The resolved spec a job was created with, read back from its row: what its worker receives."""
    registry = {"model_name": job.model_name, "alias": job.alias}
    return JobSpec.model_validate({"base_model": job.base_model, **job.hyperparameters, "registry": registry})


async def get(session: AsyncSession, *, job_id: str) -> TrainingJob:
    job = await session.get(TrainingJob, job_id, populate_existing=True)
    if job is None:
        raise APIError(404, f"no training job {job_id!r}", code="job_not_found")
    return job


async def list_(session: AsyncSession, *, state: JobState | None, limit: int) -> list[TrainingJob]:
    """Newest first."""
    query = select(TrainingJob).order_by(TrainingJob.created_at.desc(), TrainingJob.id.desc()).limit(limit)
    if state is not None:
        query = query.where(TrainingJob.state == state)
    return list((await session.execute(query)).scalars())


async def cancel(session: AsyncSession, *, job_id: str) -> TrainingJob:
    """A queued job is cancelled at once (a worker that later receives its message skips it); a running one is
    flagged, and its worker stops at the next training step and reports ``cancelled``."""
    now = utcnow()
    queued = await session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.state == JobState.queued)
        .values(state=JobState.cancelled, cancel_requested=True, finished_at=now, eta_s=None)
    )
    if queued.rowcount == 0:
        await session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == job_id, TrainingJob.state == JobState.running)
            .values(cancel_requested=True)
        )
    await session.commit()
    job = await get(session, job_id=job_id)
    if job.state in FINISHED and job.state != JobState.cancelled:
        raise APIError(409, f"training job {job_id} already {job.state}", code="job_finished")
    return job


async def fail_undispatched(session: AsyncSession, *, job_id: str, error: str) -> None:
    """A job whose message could not be queued will never run: say so instead of leaving it queued."""
    await session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.state == JobState.queued)
        .values(state=JobState.failed, finished_at=utcnow(), error=error)
    )
    await session.commit()


def to_public(job: TrainingJob) -> JobPublic:
    registered = job.registered_version is not None and job.alias is not None
    return JobPublic(
        id=job.id,
        state=job.state,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        heartbeat_at=job.heartbeat_at,
        base_model=job.base_model,
        model_name=job.model_name,
        alias=job.alias,
        served_model=served_name(job.model_name, job.alias) if registered else None,
        hyperparameters=job.hyperparameters,
        dataset=job.dataset_info,
        progress=Progress(
            step=job.step,
            total_steps=job.total_steps,
            epoch=job.epoch,
            loss=job.loss,
            eval_loss=job.eval_loss,
            eta_s=job.eta_s if job.state == JobState.running else None,
        ),
        attempt=job.attempt,
        cancel_requested=job.cancel_requested,
        mlflow_experiment_id=job.mlflow_experiment_id,
        mlflow_run_id=job.mlflow_run_id,
        registered_version=job.registered_version,
        error=job.error,
    )
