import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from pydantic import ValidationError
from starlette.responses import Response

from llmops_common.contracts.models import BUNDLED_MODEL_NAME
from llmops_common.errors import ERROR_RESPONSES, APIError, validation_error
from llmops_common.openapi import RESPONSE_ID, link, links, text_answer
from llmops_trainer.datasets import feedback, validate
from llmops_trainer.datasets import service as datasets
from llmops_trainer.deps import AdminDep, SessionDep, StateDep
from llmops_trainer.jobs import service
from llmops_trainer.jobs.models import JobState
from llmops_trainer.jobs.schemas import JobCreate, JobList, JobPublic, JobSpec

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ERROR_RESPONSES)  # every error in the documented body


async def _submit(
    state: StateDep, session: SessionDep, *, spec: JobSpec, raw: bytes, source: dict, strict: bool
) -> JobPublic:
    settings = state.settings
    base_model = spec.base_model or BUNDLED_MODEL_NAME
    if base_model not in settings.base_model_names():
        raise APIError(
            422,
            f"unknown base model {base_model!r}; this trainer has: {', '.join(settings.base_model_names())}",
            code="unknown_base_model",
        )
    if len(raw) > settings.max_dataset_bytes:
        raise APIError(413, f"the dataset is larger than {settings.max_dataset_bytes} bytes", code="dataset_too_large")
    try:
        # Parsing and hashing a large file is CPU work: off the event loop.
        dataset = await asyncio.to_thread(validate.prepare, raw, max_examples=settings.max_examples, strict=strict)
    except validate.DatasetError as exc:
        state.metrics.rejected.inc()
        raise APIError(422, f"invalid dataset: {exc}", code="invalid_dataset") from None
    await datasets.store(session, dataset=dataset)
    job = await service.create(session, spec=spec, base_model=base_model, dataset=dataset, source=source)
    try:
        job.task_id = await state.dispatch(job.id, service.spec_of(job))
        await session.commit()
    except Exception as exc:  # noqa: BLE001 - whatever the broker's error, the job cannot run
        await service.fail_undispatched(session, job_id=job.id, error=f"could not queue the job: {exc!r}"[:500])
        raise APIError(
            503, "the job queue (Redis) is unreachable; the job was not queued", code="queue_unavailable"
        ) from None
    state.metrics.submitted.labels(source["kind"]).inc()
    return service.to_public(job)


_JOB = "/jobs/{job_id}"
# A job submitted either way leads to reading it, its dataset, and cancelling it.
_JOB_LINKS = links(
    201,
    read=link("get", _JOB, job_id=RESPONSE_ID),
    dataset=link("get", f"{_JOB}/dataset", job_id=RESPONSE_ID),
    cancel=link("delete", _JOB, job_id=RESPONSE_ID),
)


@router.post("", status_code=201, openapi_extra=_JOB_LINKS)
async def create(data: JobCreate, _: AdminDep, state: StateDep, session: SessionDep) -> JobPublic:
    """Validates the dataset (422 naming the bad lines), stores it and queues the job.

    ``dataset.jsonl``: chat JSONL in the request; every line must be valid. ``dataset.feedback``: the feedback
    service's SFT export for a route/variant/time window, fetched now; lines that cannot be training data are
    skipped and counted (``dataset.invalid``)."""
    spec = JobSpec.model_validate(data.model_dump(exclude={"dataset"}))
    if data.dataset.jsonl is not None:
        return await _submit(
            state, session, spec=spec, raw=data.dataset.jsonl.encode(), source={"kind": "jsonl"}, strict=True
        )
    query = data.dataset.feedback
    settings = state.settings
    raw = await feedback.fetch_sft(
        state.http,
        base_url=settings.feedback_url,
        token=settings.feedback_token_value(),
        route=query.route,
        variant=query.variant,
        since=query.since,
        until=query.until,
        max_bytes=settings.max_dataset_bytes,
        timeout_s=settings.feedback_timeout_s,
    )
    source = {"kind": "feedback", **query.model_dump(mode="json", exclude_none=True)}
    return await _submit(state, session, spec=spec, raw=raw, source=source, strict=False)


@router.post("/upload", status_code=201, openapi_extra=_JOB_LINKS)
async def upload(
    file: Annotated[UploadFile, File(description="chat-format JSONL")],
    spec: Annotated[str, Form(description="the job as JSON, without 'dataset'")],
    _: AdminDep,
    state: StateDep,
    session: SessionDep,
) -> JobPublic:
    """The same job with its dataset as a multipart file: ``curl -F file=@data.jsonl -F 'spec={...}'``."""
    try:
        job_spec = JobSpec.model_validate_json(spec)
    except ValidationError as exc:
        raise validation_error(exc.errors(), prefix=("spec",)) from None
    raw = await file.read(state.settings.max_dataset_bytes + 1)
    return await _submit(
        state, session, spec=job_spec, raw=raw, source={"kind": "upload", "filename": file.filename}, strict=True
    )


@router.get("")
async def list_jobs(
    _: AdminDep,
    session: SessionDep,
    state: JobState | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JobList:
    """Newest first."""
    return JobList(data=[service.to_public(job) for job in await service.list_(session, state=state, limit=limit)])


@router.get("/{job_id}")
async def get(job_id: str, _: AdminDep, session: SessionDep) -> JobPublic:
    return service.to_public(await service.get(session, job_id=job_id))


@router.get(
    "/{job_id}/dataset",
    response_class=Response,
    responses=text_answer("application/x-ndjson", "the canonical JSONL the job trains on"),
)
async def dataset(job_id: str, _: AdminDep, session: SessionDep) -> Response:
    """What the job trains on, exactly: the canonical JSONL (scrubbed, deduplicated, sorted) whose sha256 it names."""
    job = await service.get(session, job_id=job_id)
    content = await datasets.content(session, sha256=job.dataset_sha256)
    return Response(content or b"", media_type="application/x-ndjson")


@router.delete("/{job_id}")
async def cancel(job_id: str, _: AdminDep, session: SessionDep) -> JobPublic:
    """Cancels: a queued job at once; a running one within a training step or two (``cancel_requested`` until its
    worker reports ``cancelled``). 409 for a job that already succeeded or failed."""
    return service.to_public(await service.cancel(session, job_id=job_id))
