"""The request log: idempotent batch ingest (the gateway delivers at least once) and look-up."""

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.contracts.requestlog import RequestLogRecord
from llmops_common.errors import APIError
from llmops_common.sql import dialect_insert, utcnow
from llmops_feedback.ratings.models import Rating
from llmops_feedback.records.models import RequestRecord


def _row(record: RequestLogRecord, *, store_text: bool, received_at: datetime) -> dict:
    return {
        "request_id": record.request_id,
        "key_id": record.key_id,
        "route": record.route,
        "variant": record.variant,
        "model": record.model,
        "model_version": record.model_version,
        "user_hash": record.user_hash,
        "batch_id": record.batch_id,
        "trace_id": record.trace_id,
        "prompt_name": record.prompt_name,
        "prompt_version": record.prompt_version,
        "kind": record.kind,
        "stream": record.stream,
        "status": record.status,
        "prompt": record.prompt if store_text else None,
        "answer": record.answer if store_text else None,
        "redacted": not store_text,
        "prompt_tokens": record.usage.prompt_tokens,
        "completion_tokens": record.usage.completion_tokens,
        "latency_ms": record.latency_ms,
        "ttft_ms": record.ttft_ms,
        "retrieved_ids": record.retrieved_ids,
        "error": record.error,
        "started_at": datetime.fromtimestamp(record.started_at, UTC),
        "finished_at": datetime.fromtimestamp(record.finished_at, UTC),
        "received_at": received_at,
    }


async def ingest(session: AsyncSession, *, records: list[RequestLogRecord], store_text: bool) -> list[RequestLogRecord]:
    """Inserts records not seen before and returns them; a record delivered again (same request id) changes nothing."""
    received_at = utcnow()
    unique = {r.request_id: r for r in records}  # a batch may repeat itself after a partial replay
    rows = [_row(r, store_text=store_text, received_at=received_at) for r in unique.values()]
    # One statement with the rows as its parameters: SQLAlchemy sends them as multi-row INSERTs ("insertmanyvalues")
    # of llmops_common.sql.INSERT_PAGE_ROWS rows from one compiled template. ``.values(rows)`` instead compiled a
    # statement with a bind per cell for every batch (up to 500 rows), each batch size a statement of its own that
    # the connections kept prepared: 7 to 9 times slower, and the soak's memory growth (bench/feedback_ingest_bench.py).
    statement = (
        dialect_insert(session)(RequestRecord)
        .on_conflict_do_nothing(index_elements=["request_id"])
        .returning(RequestRecord.request_id)
    )
    inserted = set((await session.scalars(statement, rows)).all())
    await session.commit()
    return [record for request_id, record in unique.items() if request_id in inserted]


async def get(
    session: AsyncSession, *, request_id: str, key_id: str | None = None, for_update: bool = False
) -> RequestRecord:
    """The record; with ``key_id``, only if that key made the request (else it is as good as unknown)."""
    record = await session.get(RequestRecord, request_id, with_for_update=for_update)
    if record is None or (key_id is not None and record.key_id != key_id):
        raise APIError(404, f"request {request_id!r} not found", code="request_not_found")
    return record


async def ratings_of(session: AsyncSession, *, request_id: str) -> list[Rating]:
    query = select(Rating).where(Rating.request_id == request_id).order_by(Rating.id)
    return list((await session.scalars(query)).all())
