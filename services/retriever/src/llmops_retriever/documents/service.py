"""Documents: chunk, embed, upsert; replace on re-ingest; delete; update metadata.

Every chunk is a point whose id is derived from (document id, chunk index), so ingesting a document again
overwrites its chunks in place, and only the chunks past its new length need deleting. The payload of each
chunk carries the document's id, metadata and ingest time: no other database is needed.
"""

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from llmops_common.errors import APIError
from llmops_retriever.collections.service import get_spec, not_found
from llmops_retriever.documents.chunking import Chunk
from llmops_retriever.documents.extract import normalise
from llmops_retriever.documents.schemas import (
    ChunkPublic,
    DocumentPublic,
    IngestedDocument,
    IngestResult,
    check_metadata,
)
from llmops_retriever.embedding import sparse
from llmops_retriever.state import RetrieverState
from llmops_retriever.store.base import CollectionNotFound, PointIn
from llmops_retriever.store.filters import document_filter

POINT_NAMESPACE = uuid.UUID("6f1d4c1e-3b7a-5d2e-9a51-0c8e2f6b7d90")  # fixed forever: point ids depend on it
EMBED_SLICE = 256  # chunks embedded per worker-thread call, and upserted together
MAX_CHUNKS_READ = 10_000


@dataclass(frozen=True, slots=True)
class Doc:
    id: str
    text: str
    metadata: dict
    source: str | None = None  # the file name of an upload


def point_id(document_id: str, chunk_index: int) -> str:
    return str(uuid.uuid5(POINT_NAMESPACE, f"{document_id}\x00{chunk_index}"))


def default_id(text: str) -> str:
    """Same text, same id: posting an unnamed document twice stores it once."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def prepare(documents: list[Doc]) -> list[Doc]:
    """Normalised texts; the whole request is refused before anything is written if one is empty."""
    prepared, seen = [], set()
    for i, doc in enumerate(documents):
        text = normalise(doc.text)
        if not text:
            raise APIError(422, f"document {doc.id or i} has no text", code="empty_document")
        doc_id = doc.id or default_id(text)
        if doc_id in seen:
            raise APIError(422, f"document id {doc_id!r} appears twice in one request", code="duplicate_document")
        seen.add(doc_id)
        prepared.append(Doc(doc_id, text, doc.metadata, doc.source))
    return prepared


async def ingest(state: RetrieverState, *, collection: str, documents: list[Doc]) -> IngestResult:
    started = time.perf_counter()
    spec = await get_spec(state, name=collection)
    documents = prepare(documents)
    embedder = await state.models.aget(spec.embedding_model)
    async with state.ingest_slots:
        chunked: list[list[Chunk]] = await asyncio.to_thread(
            lambda: [embedder.chunk(d.text, size=spec.chunk_size, overlap=spec.chunk_overlap) for d in documents]
        )
        now = time.time()
        work = [(doc, chunk, len(chunks)) for doc, chunks in zip(documents, chunked, strict=True) for chunk in chunks]
        try:
            for start in range(0, len(work), EMBED_SLICE):
                await _store_slice(state, spec, work[start : start + EMBED_SLICE], ingested_at=now)
            removed = []
            for doc, chunks in zip(documents, chunked, strict=True):
                leftovers = document_filter(doc.id, from_chunk=len(chunks))
                removed.append(await state.store.count(collection, leftovers))
                if removed[-1]:
                    await state.store.delete(collection, leftovers)
        except CollectionNotFound:
            raise not_found(collection) from None  # deleted while we were ingesting
    seconds = time.perf_counter() - started
    state.metrics.chunks_ingested.labels(collection).inc(len(work))
    state.metrics.documents_ingested.labels(collection).inc(len(documents))
    state.metrics.ingest_duration.labels(collection).observe(seconds)
    return IngestResult(
        documents=[
            IngestedDocument(id=d.id, chunks=len(c), removed_chunks=r)
            for d, c, r in zip(documents, chunked, removed, strict=True)
        ],
        chunks=len(work),
        seconds=round(seconds, 3),
    )


async def _store_slice(state: RetrieverState, spec, work: list[tuple[Doc, Chunk, int]], *, ingested_at: float) -> None:
    texts = [chunk.text for _, chunk, _ in work]
    embedded = time.perf_counter()
    vectors = await state.models.embed(spec.embedding_model, texts)
    state.metrics.embed_duration.labels(spec.embedding_model).observe(time.perf_counter() - embedded)
    sparse_vectors = (
        await asyncio.to_thread(lambda: [sparse.document_vector(t) for t in texts]) if spec.hybrid else None
    )
    points = [
        PointIn(
            id=point_id(doc.id, chunk.index),
            dense=vectors[i].tolist(),
            sparse=sparse_vectors[i] if sparse_vectors else None,
            payload={
                "document_id": doc.id,
                "chunk_index": chunk.index,
                "chunk_count": count,
                "text": chunk.text,
                "metadata": doc.metadata,
                "source": doc.source,
                "ingested_at": ingested_at,
            },
        )
        for i, (doc, chunk, count) in enumerate(work)
    ]
    await state.store.upsert(spec.name, points)


async def get(state: RetrieverState, *, collection: str, document_id: str, with_chunks: bool = False) -> DocumentPublic:
    await get_spec(state, name=collection)
    try:
        limit = MAX_CHUNKS_READ if with_chunks else 1
        points = await state.store.scroll(collection, document_filter(document_id), limit=limit)
        if not points:
            raise APIError(404, f"document {document_id!r} not found in {collection!r}", code="document_not_found")
        count = await state.store.count(collection, document_filter(document_id))
    except CollectionNotFound:
        raise not_found(collection) from None
    first = points[0].payload
    chunks = None
    if with_chunks:
        ordered = sorted(points, key=lambda p: p.payload["chunk_index"])
        chunks = [ChunkPublic(id=p.id, index=p.payload["chunk_index"], text=p.payload["text"]) for p in ordered]
    return DocumentPublic(
        id=document_id,
        collection=collection,
        chunks=count,
        metadata=first.get("metadata") or {},
        source=first.get("source"),
        ingested_at=datetime.fromtimestamp(first["ingested_at"], UTC),
        chunk_texts=chunks,
    )


async def delete(state: RetrieverState, *, collection: str, document_id: str) -> int:
    await get_spec(state, name=collection)
    try:
        count = await state.store.count(collection, document_filter(document_id))
        if not count:
            raise APIError(404, f"document {document_id!r} not found in {collection!r}", code="document_not_found")
        await state.store.delete(collection, document_filter(document_id))
    except CollectionNotFound:
        raise not_found(collection) from None
    return count


def merge_patch(target: dict, patch: dict) -> dict:
    """RFC 7386: null removes a key, objects merge recursively, anything else replaces."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


async def update_metadata(state: RetrieverState, *, collection: str, document_id: str, patch: dict) -> DocumentPublic:
    """Applies the patch to the document's metadata on all its chunks. Two patches racing: the last one wins."""
    current = await get(state, collection=collection, document_id=document_id)
    try:
        metadata = check_metadata(merge_patch(current.metadata, patch))
    except ValueError as exc:
        raise APIError(422, str(exc), code="invalid_metadata") from None
    try:
        await state.store.set_payload(collection, document_filter(document_id), {"metadata": metadata})
    except CollectionNotFound:
        raise not_found(collection) from None
    return current.model_copy(update={"metadata": metadata})
