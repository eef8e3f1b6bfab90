from fastapi import APIRouter

from llmops_common.contracts.requestlog import RequestLogBatch
from llmops_common.errors import APIError
from llmops_feedback.deps import AdminDep, IngestDep, SessionDep, StateDep
from llmops_feedback.ratings import pending
from llmops_feedback.ratings.store import to_public
from llmops_feedback.records import service
from llmops_feedback.records.schemas import IngestResult, RequestPublic

router = APIRouter(prefix="/v1/requests", tags=["request log"])


@router.post("")
async def ingest(batch: RequestLogBatch, _: IngestDep, session: SessionDep, state: StateDep) -> IngestResult:
    """Stores request records; idempotent on ``request_id``, so the gateway may deliver a batch again. Ratings
    waiting for these records are attached (or discarded, if another key gave them)."""
    if len(batch.records) > state.settings.max_batch:
        raise APIError(413, f"at most {state.settings.max_batch} records per batch", code="batch_too_large")
    inserted = await service.ingest(session, records=batch.records, store_text=state.settings.store_text)
    for record in inserted:
        state.metrics.records.labels(record.route, record.variant).inc()
    duplicates = len(batch.records) - len(inserted)
    state.metrics.duplicates.inc(duplicates)
    # Every id of the batch, not only the new ones: a rating held while its record was being stored is found here.
    state.metrics.count_attached(await pending.attach(session, request_ids=[r.request_id for r in batch.records]))
    return IngestResult(inserted=len(inserted), duplicates=duplicates)


@router.get("/{request_id}")
async def get_request(request_id: str, _: AdminDep, session: SessionDep) -> RequestPublic:
    record = await service.get(session, request_id=request_id)
    history = [to_public(r) for r in await service.ratings_of(session, request_id=request_id)]
    current = next((r for r in reversed(history) if r.current), None)
    fields = {c: getattr(record, c) for c in RequestPublic.model_fields if hasattr(record, c)}
    return RequestPublic(**fields, rating=current, rating_history=history)
