"""The store contract, run against both engines: Qdrant Edge on disk, and qdrant-client's local mode (which
speaks the Qdrant server's client API). Vectors are small and synthetic here; the API tests use real ones."""

import time
import uuid

import numpy as np
import pytest

from llmops_retriever.embedding import sparse
from llmops_retriever.store.base import (
    CollectionExists,
    CollectionNotFound,
    CollectionSpec,
    Distance,
    PointIn,
    Query,
)
from llmops_retriever.store.edge import EdgeStore
from llmops_retriever.store.filters import Filter, document_filter
from llmops_retriever.store.qdrant import QdrantStore

DIM = 16


def unit(seed: int) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(DIM)
    return (v / np.linalg.norm(v)).tolist()


def spec(name: str, *, hybrid: bool = False) -> CollectionSpec:
    return CollectionSpec(
        name=name,
        embedding_model="test",
        dimension=DIM,
        distance=Distance.cosine,
        hybrid=hybrid,
        chunk_size=100,
        chunk_overlap=10,
        created_at=time.time(),
    )


def point(doc: str, index: int, *, seed: int, text: str = "", hybrid: bool = False, **metadata) -> PointIn:
    return PointIn(
        id=str(uuid.uuid5(uuid.NAMESPACE_OID, f"{doc}/{index}")),
        dense=unit(seed),
        sparse=sparse.document_vector(text or f"chunk {index} of {doc}") if hybrid else None,
        payload={
            "document_id": doc,
            "chunk_index": index,
            "text": text,
            "metadata": metadata,
            "ingested_at": 1000.0 + seed,
        },
    )


@pytest.fixture(params=["edge", "qdrant"])
async def store(request, tmp_path):
    if request.param == "edge":
        engine = EdgeStore(tmp_path / "edge", index_check_s=3600)
    else:
        engine = QdrantStore(url=":memory:")
    await engine.start()
    yield engine
    await engine.aclose()


async def test_collection_lifecycle(store):
    await store.create_collection(spec("alpha"))
    await store.create_collection(spec("beta", hybrid=True))
    with pytest.raises(CollectionExists):
        await store.create_collection(spec("alpha"))
    assert [s.name for s in await store.list_collections()] == ["alpha", "beta"]
    assert (await store.get_collection("beta")).hybrid is True
    assert await store.count("alpha") == 0
    await store.delete_collection("alpha")
    assert [s.name for s in await store.list_collections()] == ["beta"]
    for call in (store.get_collection("alpha"), store.count("alpha"), store.delete_collection("alpha")):
        with pytest.raises(CollectionNotFound):
            await call
    with pytest.raises(CollectionNotFound):
        await store.search("alpha", Query(dense=unit(1), sparse=None, limit=3))


async def test_upsert_is_idempotent_and_search_ranks_by_similarity(store):
    await store.create_collection(spec("c"))
    points = [point(f"d{i}", 0, seed=i, text=f"text {i}") for i in range(50)]
    await store.upsert("c", points)
    await store.upsert("c", points[:10])  # same ids: replaced, not added
    assert await store.count("c") == 50
    hits = await store.search("c", Query(dense=unit(7), sparse=None, limit=5))
    assert hits[0].payload["document_id"] == "d7" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    strict = await store.search("c", Query(dense=unit(7), sparse=None, limit=5, score_threshold=0.99))
    assert [h.payload["document_id"] for h in strict] == ["d7"]


async def test_filters_match_ranges_and_negation(store):
    await store.create_collection(spec("c"))
    await store.upsert(
        "c",
        [
            point(f"d{i}", 0, seed=i, lang="en" if i % 2 else "de", year=2000 + i, tags=["a", "b"] if i < 3 else ["c"])
            for i in range(10)
        ],
    )

    async def docs(flt: dict) -> set[str]:
        hits = await store.search("c", Query(dense=unit(0), sparse=None, limit=20, filter=Filter.model_validate(flt)))
        assert len(hits) == await store.count("c", Filter.model_validate(flt))
        return {h.payload["document_id"] for h in hits}

    assert await docs({"must": [{"key": "metadata.lang", "match": {"value": "en"}}]}) == {"d1", "d3", "d5", "d7", "d9"}
    assert await docs({"must": [{"key": "metadata.year", "range": {"gte": 2004, "lt": 2007}}]}) == {"d4", "d5", "d6"}
    assert await docs(
        {
            "must": [{"key": "metadata.lang", "match": {"value": "de"}}],
            "must_not": [{"key": "metadata.year", "range": {"lte": 2004}}],
        }
    ) == {"d6", "d8"}
    assert await docs({"must": [{"key": "metadata.tags", "match": {"any": ["a"]}}]}) == {"d0", "d1", "d2"}
    assert await docs({"must": [{"key": "document_id", "match": {"except": ["d0", "d1", "d2", "d3"]}}]}) == {
        "d4",
        "d5",
        "d6",
        "d7",
        "d8",
        "d9",
    }
    assert await docs(
        {
            "should": [
                {"key": "metadata.year", "range": {"gt": 2008}},
                {
                    "must": [
                        {"key": "metadata.lang", "match": {"value": "en"}},
                        {"key": "metadata.year", "range": {"lt": 2002}},
                    ]
                },
            ]
        }
    ) == {"d1", "d9"}


async def test_delete_by_filter_and_set_payload(store):
    await store.create_collection(spec("c"))
    await store.upsert("c", [point("doc", i, seed=i, text=f"chunk {i}", v=1) for i in range(6)])
    await store.upsert("c", [point("other", 0, seed=99, v=1)])
    await store.delete("c", document_filter("doc", from_chunk=4))
    remaining = await store.scroll("c", document_filter("doc"), limit=100)
    assert sorted(h.payload["chunk_index"] for h in remaining) == [0, 1, 2, 3]
    await store.set_payload("c", document_filter("doc"), {"metadata": {"v": 2, "new": "x"}})
    assert all(
        h.payload["metadata"] == {"v": 2, "new": "x"} for h in await store.scroll("c", document_filter("doc"), 100)
    )
    assert (await store.scroll("c", document_filter("other"), 10))[0].payload["metadata"] == {"v": 1}
    await store.delete("c", document_filter("doc"))
    assert await store.count("c") == 1


async def test_hybrid_search_finds_an_exact_rare_term(store):
    """The dense vectors know nothing of the term (random here); only the BM25 leg can find it, and RRF keeps it."""
    await store.create_collection(spec("h", hybrid=True))
    texts = [f"a note about ordinary topic number {i} and general things" for i in range(40)]
    texts[23] = "the replacement part is catalogued as QX-7731-ZETA in the old inventory"
    await store.upsert("h", [point(f"d{i}", 0, seed=1000 + i, text=t, hybrid=True) for i, t in enumerate(texts)])
    query = Query(dense=unit(5), sparse=sparse.query_vector("where is QX-7731-ZETA?"), limit=5)
    hits = await store.search("h", query)
    assert hits[0].payload["document_id"] == "d23"
    dense_only = await store.search("h", Query(dense=unit(5), sparse=None, limit=5))
    assert "d23" not in {h.payload["document_id"] for h in dense_only}  # the dense leg alone misses it


async def test_exact_and_indexed_search_agree_on_small_data(store):
    await store.create_collection(spec("c"))
    await store.upsert("c", [point(f"d{i}", 0, seed=i) for i in range(300)])
    for seed in (1001, 1002, 1003):
        q = unit(seed)
        exact = await store.search("c", Query(dense=q, sparse=None, limit=10, exact=True))
        fast = await store.search("c", Query(dense=q, sparse=None, limit=10))
        assert [h.id for h in fast] == [h.id for h in exact]


async def test_edge_collections_survive_a_restart(tmp_path):
    store = EdgeStore(tmp_path / "edge", index_check_s=3600)
    await store.start()
    await store.create_collection(spec("kept", hybrid=True))
    await store.upsert("kept", [point("doc", i, seed=i, text=f"chunk {i}", hybrid=True) for i in range(5)])
    await store.aclose()
    reopened = EdgeStore(tmp_path / "edge", index_check_s=3600)
    await reopened.start()
    try:
        assert (await reopened.get_collection("kept")).hybrid is True
        assert await reopened.count("kept") == 5
        hits = await reopened.search("kept", Query(dense=unit(3), sparse=None, limit=1))
        assert hits[0].payload["chunk_index"] == 3
    finally:
        await reopened.aclose()
