"""Files: a key's uploads (batch inputs) and the files its batches write. A key sees only its own; another key's
file answers as one that does not exist (404)."""

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from llmops_common.errors import APIError
from llmops_common.sql import utcnow
from llmops_gateway.batches import input as batch_input
from llmops_gateway.files.models import StoredFile
from llmops_gateway.files.schemas import PURPOSES
from llmops_gateway.files.store import ObjectStore


@dataclass(frozen=True)
class FilesLimits:
    max_bytes: int
    max_lines: int
    shard_lines: int
    default_max_tokens: int  # a batch line without max_tokens is estimated with this, as online


def new_id() -> str:
    return f"file-{uuid.uuid4().hex[:24]}"


def check_batch_input(data: bytes, *, max_lines: int) -> int:
    """The number of requests in a batch input file, or a 400 naming the problem and its lines."""
    try:
        lines = batch_input.read_lines(data)
    except UnicodeDecodeError as exc:
        raise APIError(400, f"the file is not UTF-8 (byte {exc.start})", code="invalid_file", param="file") from None
    if not lines:
        raise APIError(400, "the file holds no requests", code="empty_file", param="file")
    if len(lines) > max_lines:
        raise APIError(
            400, f"{len(lines)} requests, over the limit of {max_lines}", code="too_many_lines", param="file"
        )
    if repeats := batch_input.duplicate_custom_ids(lines):
        shown = "; ".join(f"{cid!r} on lines {first} and {again}" for cid, first, again in repeats[:5])
        more = f" (and {len(repeats) - 5} more)" if len(repeats) > 5 else ""
        raise APIError(400, f"custom_id repeated: {shown}{more}", code="duplicate_custom_id", param="file")
    return len(lines)


async def create(
    session: AsyncSession, store: ObjectStore, *, key_id: str, filename: str, purpose: str, data: bytes, max_lines: int
) -> StoredFile:
    if purpose not in PURPOSES:
        raise APIError(400, f"purpose must be one of {', '.join(PURPOSES)}", code="invalid_purpose", param="purpose")
    lines = check_batch_input(data, max_lines=max_lines)
    return await save(session, store, key_id=key_id, filename=filename, purpose=purpose, data=data, lines=lines)


async def save(
    session: AsyncSession,
    store: ObjectStore,
    *,
    key_id: str,
    filename: str,
    purpose: str,
    data: bytes,
    lines: int,
    file_id: str | None = None,
) -> StoredFile:
    """Contents first, then the row: a crash between leaves an object nobody points to, never a row without one."""
    file_id = file_id or new_id()
    await store.put(file_id, data)
    row = StoredFile(
        id=file_id,
        key_id=key_id,
        purpose=purpose,
        filename=filename[:255] or "upload.jsonl",
        bytes=len(data),
        lines=lines,
        object_name=file_id,
        created_at=utcnow(),
    )
    await session.merge(row)  # a batch finalised twice writes the same file again, not a second one
    await session.commit()
    return row


async def get(session: AsyncSession, *, key_id: str, file_id: str) -> StoredFile:
    row = await session.get(StoredFile, file_id)
    if row is None or row.key_id != key_id:
        raise APIError(404, f"No such File object: {file_id}", code="file_not_found", param="file_id")
    return row


async def list_for(
    session: AsyncSession, *, key_id: str, purpose: str | None, limit: int, after: str | None, order: str
) -> tuple[list[StoredFile], bool]:
    query = select(StoredFile).where(StoredFile.key_id == key_id)
    if purpose:
        query = query.where(StoredFile.purpose == purpose)
    newest_first = order == "desc"
    if after:
        anchor = await get(session, key_id=key_id, file_id=after)
        query = query.where(
            StoredFile.created_at < anchor.created_at if newest_first else StoredFile.created_at > anchor.created_at
        )
    column = StoredFile.created_at.desc() if newest_first else StoredFile.created_at.asc()
    rows = list((await session.scalars(query.order_by(column, StoredFile.id).limit(limit + 1))).all())
    return rows[:limit], len(rows) > limit


async def content(session: AsyncSession, store: ObjectStore, *, key_id: str, file_id: str) -> bytes:
    row = await get(session, key_id=key_id, file_id=file_id)
    return await store.get(row.object_name)


async def delete(session: AsyncSession, store: ObjectStore, *, key_id: str, file_id: str) -> None:
    row = await get(session, key_id=key_id, file_id=file_id)
    await session.delete(row)
    await session.commit()
    await store.delete(row.object_name)
