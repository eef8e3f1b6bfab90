"""Qdrant Edge's HNSW index is built in the background (a child process on a copy of the shard) while the
collection keeps answering searches and taking writes; the writes made meanwhile survive the swap."""

import asyncio
import time
import uuid

import numpy as np
import pytest

from llmops_retriever.store.base import CollectionSpec, Distance, PointIn, Query
from llmops_retriever.store.edge import EdgeStore
from llmops_retriever.store.filters import document_filter

DIM = 384  # the real dimension: the indexing threshold is in kilobytes of vectors
N = 8000  # above Qdrant's default indexing threshold (10 MB of vectors: 6,700 points of 384 floats)


def vectors(n: int, seed: int) -> np.ndarray:
    """Clustered unit vectors, like embeddings of texts on a few hundred topics (uniformly random vectors in 384
    dimensions have no near neighbours to speak of, which no index is built for)."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(0).standard_normal((300, DIM))
    v = centers[rng.integers(0, len(centers), n)] + 0.6 * rng.standard_normal((n, DIM))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def points(vs: np.ndarray, doc: str, *, first: int = 0) -> list[PointIn]:
    return [
        PointIn(
            id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"{doc}/{i}")),
            dense=v.tolist(),
            sparse=None,
            payload={"document_id": doc, "chunk_index": i, "text": "", "metadata": {}, "ingested_at": 0.0},
        )
        for i, v in enumerate(vs, start=first)
    ]


@pytest.fixture
async def store(tmp_path):
    engine = EdgeStore(tmp_path / "edge", index_after_writes=N, index_quiet_s=0.2, index_check_s=0.1)
    await engine.start()
    yield engine
    await engine.aclose()


async def test_background_build_keeps_serving_and_keeps_writes(store, tmp_path):
    await store.create_collection(
        CollectionSpec(
            name="big",
            embedding_model="test",
            dimension=DIM,
            distance=Distance.cosine,
            hybrid=False,
            chunk_size=100,
            chunk_overlap=10,
            created_at=time.time(),
        )
    )
    base = vectors(N, seed=1)
    for start in range(0, N, 1000):
        await store.upsert("big", points(base[start : start + 1000], "base", first=start))
    assert (await store.index_status("big"))["generation"] == 0

    # The indexer starts on its own once writes pause; serve and write until it has swapped the index in.
    latencies, written, deadline = [], 0, time.monotonic() + 240
    late = vectors(200, seed=2)
    queries = vectors(50, seed=3)
    while (status := await store.index_status("big"))["generation"] == 0 or status["building"]:
        assert time.monotonic() < deadline, "the index build did not finish"
        started = time.perf_counter()
        hits = await store.search("big", Query(dense=queries[len(latencies) % 50].tolist(), sparse=None, limit=10))
        latencies.append(time.perf_counter() - started)
        assert len(hits) == 10
        if written < len(late) and len(latencies) % 5 == 0 and status["building"] and not status["generation"]:
            await store.upsert("big", points(late[written : written + 10], "late", first=written))
            written += 10
        await asyncio.sleep(0.01)
    assert written > 0, "no write happened while the index was being built"
    assert len(latencies) > 20
    # Serving went on: no search waited for the build (optimize() holds its process's GIL throughout).
    assert max(latencies) < 0.5, f"a search took {max(latencies):.3f}s during the build"

    status = await store.index_status("big")
    assert status["generation"] == 1 and not status["building"]
    assert status["indexed_vectors"] >= N
    assert await store.count("big") == N + written
    assert await store.count("big", document_filter("late")) == written
    assert not (tmp_path / "edge" / "big" / "gen-0").exists()

    # The index answers like exhaustive search (recall@10).
    found = 0
    for q in queries:
        exact = await store.search("big", Query(dense=q.tolist(), sparse=None, limit=10, exact=True))
        fast = await store.search("big", Query(dense=q.tolist(), sparse=None, limit=10))
        found += len({h.id for h in exact} & {h.id for h in fast})
    assert found / (10 * len(queries)) >= 0.95

    # The swapped-in generation is what a restart opens.
    await store.aclose()
    reopened = EdgeStore(tmp_path / "edge", index_check_s=3600)
    await reopened.start()
    try:
        assert await reopened.count("big") == N + written
        assert (await reopened.index_status("big"))["generation"] == 1
    finally:
        await reopened.aclose()


async def test_deleting_a_collection_cancels_its_build(store, tmp_path):
    await store.create_collection(
        CollectionSpec(
            name="gone",
            embedding_model="test",
            dimension=DIM,
            distance=Distance.cosine,
            hybrid=False,
            chunk_size=100,
            chunk_overlap=10,
            created_at=time.time(),
        )
    )
    await store.upsert("gone", points(vectors(N, seed=4), "doc"))
    deadline = time.monotonic() + 30
    while not (await store.index_status("gone"))["building"]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await store.delete_collection("gone")
    assert not (tmp_path / "edge" / "gone").exists()
    assert [c.name for c in await store.list_collections()] == []
