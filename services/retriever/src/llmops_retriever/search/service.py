"""Search: embed the query with the collection's model, ask the engine, return chunks with their documents.

With tracing on, the embedding (GenAI conventions) and the engine's search (database conventions) are spans of
their own under the request's span, whose parent is the caller's (the gateway's ``retrieve``)."""

import asyncio
import time

from llmops_common import tracing
from llmops_common.contracts.search import SearchHit, SearchResponse
from llmops_common.errors import APIError
from llmops_retriever.collections.service import get_spec, not_found
from llmops_retriever.embedding import sparse
from llmops_retriever.search.schemas import SearchRequest
from llmops_retriever.state import RetrieverState
from llmops_retriever.store.base import CollectionNotFound, Query


async def search(state: RetrieverState, *, collection: str, request: SearchRequest) -> SearchResponse:
    started = time.perf_counter()
    spec = await get_spec(state, name=collection)
    if request.hybrid and not spec.hybrid:
        raise APIError(422, f"collection {collection!r} was created without hybrid search", code="hybrid_unavailable")
    hybrid = spec.hybrid if request.hybrid is None else request.hybrid
    if request.top_k > state.settings.max_top_k:
        raise APIError(422, f"top_k is at most {state.settings.max_top_k}", code="invalid_request")
    embedding = {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": spec.embedding_model}
    with tracing.span(f"embeddings {spec.embedding_model}", attributes=embedding):
        vectors = await state.models.embed(spec.embedding_model, [request.query], purpose="query")
    query = Query(
        dense=vectors[0].tolist(),
        sparse=await asyncio.to_thread(sparse.query_vector, request.query) if hybrid else None,
        limit=request.top_k,
        filter=request.filter,
        score_threshold=request.score_threshold,
        exact=request.exact,
    )
    mode = "hybrid" if hybrid else "dense"
    searching = {
        "db.system.name": "qdrant",  # Qdrant Edge in process, or a Qdrant server
        "db.operation.name": "search",
        "db.collection.name": collection,
        "llmops.store": state.store.kind.value,
        "llmops.search.mode": mode,
        "llmops.search.top_k": request.top_k,
    }
    # Named without the collection: a request names it, and span names must stay few.
    with tracing.span("search", attributes=searching) as span:
        try:
            hits = await state.store.search(collection, query)
        except CollectionNotFound:
            raise not_found(collection) from None
        if span is not None:
            span.set_attribute("llmops.search.hits", len(hits))
    seconds = time.perf_counter() - started
    state.metrics.searches.labels(collection, mode).inc()
    state.metrics.search_duration.labels(collection, mode).observe(seconds)
    data = [
        SearchHit(
            id=h.id,
            document_id=h.payload["document_id"],
            chunk_index=h.payload["chunk_index"],
            score=h.score,
            text=h.payload["text"],
            metadata=h.payload.get("metadata") or {},
            source=h.payload.get("source"),
        )
        for h in hits
    ]
    return SearchResponse(data=data, hybrid=hybrid, took_ms=round(seconds * 1000, 3))
