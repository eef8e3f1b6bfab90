"""Collections: create (the embedding model fixes the dimension), list, describe, delete."""

import time
from datetime import UTC, datetime

from llmops_common.errors import APIError
from llmops_retriever.collections.schemas import CollectionCreate, CollectionPublic
from llmops_retriever.embedding.models import UnknownModel
from llmops_retriever.state import RetrieverState
from llmops_retriever.store.base import CollectionExists, CollectionNotFound, CollectionSpec
from llmops_retriever.store.filters import first_chunks


def not_found(name: str) -> APIError:
    return APIError(404, f"collection {name!r} not found", code="collection_not_found")


def to_public(spec: CollectionSpec, **extra) -> CollectionPublic:
    fields = spec.model_dump()
    fields["created_at"] = datetime.fromtimestamp(spec.created_at, UTC)
    return CollectionPublic(**fields, **extra)


async def get_spec(state: RetrieverState, *, name: str) -> CollectionSpec:
    try:
        return await state.store.get_collection(name)
    except CollectionNotFound:
        raise not_found(name) from None


async def create(state: RetrieverState, *, data: CollectionCreate) -> CollectionSpec:
    settings = state.settings
    model_name = data.embedding_model or settings.embedding_model
    try:
        embedder = await state.models.aget(model_name)
    except UnknownModel as exc:
        raise APIError(422, str(exc), code="unknown_embedding_model") from None
    if data.dimension is not None and data.dimension != embedder.dimension:
        raise APIError(
            422,
            f"{model_name} makes {embedder.dimension}-dimensional vectors, not {data.dimension}",
            code="dimension_mismatch",
        )
    chunk_size = data.chunk_size or min(settings.chunk_size, embedder.max_tokens)
    chunk_overlap = (
        data.chunk_overlap if data.chunk_overlap is not None else min(settings.chunk_overlap, chunk_size // 2)
    )
    if chunk_size > embedder.max_tokens:
        raise APIError(
            422, f"chunk_size over the {embedder.max_tokens} tokens {model_name} reads", code="chunk_too_large"
        )
    if chunk_overlap >= chunk_size:
        raise APIError(422, "chunk_overlap must be smaller than chunk_size", code="invalid_request")
    spec = CollectionSpec(
        name=data.name,
        embedding_model=model_name,
        dimension=embedder.dimension,
        distance=data.distance,
        hybrid=data.hybrid,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        created_at=time.time(),
    )
    try:
        await state.store.create_collection(spec)
    except CollectionExists:
        raise APIError(409, f"collection {data.name!r} already exists", code="collection_exists") from None
    return spec


async def describe(state: RetrieverState, *, name: str) -> CollectionPublic:
    try:
        spec = await state.store.get_collection(name)
        return to_public(
            spec,
            points_count=await state.store.count(name),
            documents_count=await state.store.count(name, first_chunks()),
            index=await state.store.index_status(name),
        )
    except CollectionNotFound:
        raise not_found(name) from None


async def delete(state: RetrieverState, *, name: str) -> None:
    try:
        await state.store.delete_collection(name)
    except CollectionNotFound:
        raise not_found(name) from None


async def build_index(state: RetrieverState, *, name: str) -> CollectionPublic:
    """Builds the collection's vector index now and waits (the embedded engine otherwise does it in the background)."""
    try:
        await state.store.optimize(name)
    except CollectionNotFound:
        raise not_found(name) from None
    except RuntimeError as exc:  # the build process failed; the live shard is untouched
        raise APIError(503, str(exc), code="index_build_failed") from None
    return await describe(state, name=name)
