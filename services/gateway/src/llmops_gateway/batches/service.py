"""Batches as the API sees them: submit (checked whole before anything runs), read, list, cancel.

Running them is the batch workers' (``batches.worker``): they find new batches and lapsed shards in SQL, so the API
needs no broker connection of its own.
"""

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.errors import APIError
from llmops_common.sql import utcnow
from llmops_gateway.batches import fit
from llmops_gateway.batches import input as batch_input
from llmops_gateway.batches.models import Batch, LineResult, Shard
from llmops_gateway.batches.schemas import WINDOWS, BatchCreate, BatchObject, BatchUsage, RequestCounts, to_public
from llmops_gateway.files import service as files
from llmops_gateway.files.store import ObjectStore
from llmops_gateway.keys.auth import AuthenticatedKey
from llmops_gateway.spend.prices import PriceTable

ACTIVE = ("validating", "in_progress")  # what cancel stops


async def create(
    session: AsyncSession,
    store: ObjectStore,
    *,
    key: AuthenticatedKey,
    data: BatchCreate,
    shard_lines: int,
    default_max_tokens: int,
    resolve: fit.Resolve,
    prices: PriceTable,
    currency: str,
) -> BatchObject:
    """The batch, accepted (``validating``) once it is known to fit its key's and routes' limits and budgets
    (``fit``); ``resolve`` finds a line's route as the endpoint's pipeline will."""
    if data.endpoint not in batch_input.ENDPOINTS:
        raise APIError(
            400,
            f"endpoint must be one of {', '.join(batch_input.ENDPOINTS)}",
            code="invalid_endpoint",
            param="endpoint",
        )
    if data.completion_window not in WINDOWS:
        raise APIError(
            400, "completion_window must be 24h", code="invalid_completion_window", param="completion_window"
        )
    source = await files.get(session, key_id=key.id, file_id=data.input_file_id)
    if source.purpose != "batch":
        raise APIError(400, "the input file's purpose must be batch", code="invalid_input_file", param="input_file_id")
    lines = batch_input.read_lines(await store.get(source.object_name))  # checked at upload: UTF-8, no repeats
    if repeats := batch_input.duplicate_custom_ids(lines):
        cid, first, again = repeats[0]
        raise APIError(400, f"custom_id {cid!r} repeated on lines {first} and {again}", code="duplicate_custom_id")
    estimate = await fit.check(
        lines,
        key=key,
        endpoint=data.endpoint,
        resolve=resolve,
        prices=prices,
        default_max_tokens=default_max_tokens,
        currency=currency,
    )
    now = utcnow()
    batch = Batch(
        id=f"batch_{uuid.uuid4().hex[:24]}",
        key_id=key.id,
        endpoint=data.endpoint,
        input_file_id=source.id,
        completion_window=data.completion_window,
        status="validating",
        total=len(lines),
        estimated_tokens=estimate,
        metadata_=data.metadata,
        created_at=now,
        expires_at=now + WINDOWS[data.completion_window],
    )
    session.add(batch)
    for index, first in enumerate(range(0, len(lines), shard_lines)):
        end = min(first + shard_lines, len(lines))
        session.add(Shard(batch_id=batch.id, index=index, first_line=first, end_line=end, status="pending", attempts=0))
    await session.commit()
    return to_public(batch, RequestCounts(total=batch.total, completed=0, failed=0))


async def public(session: AsyncSession, batch: Batch) -> BatchObject:
    """The batch with its request counts and token usage so far, summed from its lines' results."""
    rows = await session.execute(
        select(
            LineResult.ok,
            func.count(),
            func.coalesce(func.sum(LineResult.prompt_tokens), 0),
            func.coalesce(func.sum(LineResult.completion_tokens), 0),
        )
        .where(LineResult.batch_id == batch.id)
        .group_by(LineResult.ok)
    )
    by_ok, prompt, completion = {}, 0, 0
    for ok, n, p, c in rows.all():
        by_ok[bool(ok)] = n
        prompt, completion = prompt + int(p), completion + int(c)
    counts = RequestCounts(total=batch.total, completed=by_ok.get(True, 0), failed=by_ok.get(False, 0))
    usage = BatchUsage(input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion)
    return to_public(batch, counts, usage)


async def _own(session: AsyncSession, *, key_id: str, batch_id: str) -> Batch:
    batch = await session.get(Batch, batch_id)
    if batch is None or batch.key_id != key_id:
        raise APIError(404, f"No such Batch object: {batch_id}", code="batch_not_found", param="batch_id")
    return batch


async def get(session: AsyncSession, *, key_id: str, batch_id: str) -> BatchObject:
    return await public(session, await _own(session, key_id=key_id, batch_id=batch_id))


async def list_for(
    session: AsyncSession, *, key_id: str, limit: int, after: str | None
) -> tuple[list[BatchObject], bool]:
    query = select(Batch).where(Batch.key_id == key_id)
    if after:
        anchor = await _own(session, key_id=key_id, batch_id=after)
        query = query.where(Batch.created_at < anchor.created_at)
    rows = list((await session.scalars(query.order_by(Batch.created_at.desc(), Batch.id).limit(limit + 1))).all())
    return [await public(session, row) for row in rows[:limit]], len(rows) > limit


async def cancel(session: AsyncSession, *, key_id: str, batch_id: str) -> BatchObject:
    """Running shards stop after the lines they have in flight; the workers then write what was done and mark the
    batch cancelled. Cancelling a finished batch is 409; cancelling twice answers the batch as it is."""
    batch = await _own(session, key_id=key_id, batch_id=batch_id)
    if batch.status in ACTIVE:
        await session.execute(
            update(Batch)
            .where(Batch.id == batch.id, Batch.status.in_(ACTIVE))
            .values(status="cancelling", cancelling_at=utcnow())
        )
        await session.commit()
        await session.refresh(batch)
    elif batch.status not in ("cancelling", "cancelled"):
        raise APIError(409, f"batch {batch_id} is {batch.status}; it cannot be cancelled", code="batch_not_active")
    return await public(session, batch)
