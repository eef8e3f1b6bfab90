"""The end of a batch: once no shard can still add a line, its results become the output and error files.

Any worker may find a batch ready (the last shard's own worker at once, every dispatcher on its rounds); a
conditional update lets one of them take it. One that dies halfway leaves the batch ``finalizing`` with an old
``finalizing_at``; the first round after ``GATEWAY_BATCH_FINALIZE_STALE_S`` takes it over, on any worker: the files
have fixed ids, so writing them again replaces them, and their lines come from the results table (each line once).
"""

import logging
from datetime import timedelta

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmops_common.sql import utcnow
from llmops_gateway.batches import input as batch_input
from llmops_gateway.batches.models import Batch, LineResult, Shard
from llmops_gateway.batches.worker.lines import failed
from llmops_gateway.files import service as files
from llmops_gateway.files.models import StoredFile
from llmops_gateway.files.store import ObjectStore

logger = logging.getLogger(__name__)


async def finalize_if_ready(
    sessions: async_sessionmaker[AsyncSession], store: ObjectStore, *, batch_id: str, stale: timedelta
) -> bool:
    """Whether this call finalised the batch. ``stale``: a finalisation older than this was abandoned by a dead
    worker, and is taken over (``GATEWAY_BATCH_FINALIZE_STALE_S``)."""
    async with sessions() as session:
        batch = await session.get(Batch, batch_id)
        if batch is None:
            return False
        now = utcnow()
        final = await _ready(session, batch, now)
        if final is None:
            return False
        taken = await session.execute(
            update(Batch)
            .where(
                Batch.id == batch_id,
                Batch.status == batch.status,
                Batch.finalizing_at.is_(None) | (Batch.finalizing_at < now - stale),
            )
            .values(status="finalizing" if final == "completed" else batch.status, finalizing_at=now)
        )
        await session.commit()
        if taken.rowcount != 1:
            return False
        results = (
            await session.scalars(select(LineResult).where(LineResult.batch_id == batch_id).order_by(LineResult.line))
        ).all()
        ok = [r.output for r in results if r.ok]
        failed = [r.output for r in results if not r.ok]
        if final == "expired":  # OpenAI's: every line the window did not reach is an error line
            failed += await _expired_lines(session, store, batch, {r.line for r in results})
        output_id = await _write(session, store, batch, "output", ok)
        error_id = await _write(session, store, batch, "errors", failed)
        done_at = utcnow()
        values = {"status": final, "output_file_id": output_id, "error_file_id": error_id}
        if final != "expired":
            values["completed_at" if final == "completed" else "cancelled_at"] = done_at
        await session.execute(update(Batch).where(Batch.id == batch_id).values(**values))
        await session.commit()
    logger.info("batch finalized", extra={"batch": batch_id, "status": final, "ok": len(ok), "failed": len(failed)})
    return True


async def _ready(session: AsyncSession, batch: Batch, now) -> str | None:
    """The status the batch ends in, if nothing can still add a line to it; else None."""
    shards = (await session.scalars(select(Shard).where(Shard.batch_id == batch.id))).all()
    if batch.status == "cancelling":
        running = [s for s in shards if s.status == "running" and s.lease_until is not None and s.lease_until > now]
        if running:
            return None
        return "expired" if batch.expired_at is not None else "cancelled"
    if batch.status == "in_progress":
        return "completed" if all(s.status == "done" for s in shards) else None
    if batch.status == "finalizing":
        return "completed"  # taken over only when stale (the update's condition)
    return None


async def _write(session: AsyncSession, store: ObjectStore, batch: Batch, kind: str, lines: list[dict]) -> str | None:
    if not lines:
        return None
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    row = await files.save(
        session,
        store,
        key_id=batch.key_id,
        filename=f"{batch.id}_{kind}.jsonl",
        purpose="batch_output",
        data=data,
        lines=len(lines),
        file_id=f"file-{batch.id.removeprefix('batch_')}-{kind}",
    )
    return row.id


async def _expired_lines(session: AsyncSession, store: ObjectStore, batch: Batch, done: set[int]) -> list[dict]:
    source = await session.get(StoredFile, batch.input_file_id)
    lines = batch_input.read_lines(await store.get(source.object_name))
    return [
        failed(batch.id, index, line.custom_id, "batch_expired", "the batch expired before this request ran").output
        for index, line in enumerate(lines)
        if index not in done
    ]
