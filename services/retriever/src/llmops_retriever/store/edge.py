"""Qdrant Edge: Qdrant's engine in-process, one on-disk shard per collection (the embedded default)."""

import asyncio
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import qdrant_edge as qe

from llmops_retriever.store import filters as f
from llmops_retriever.store.base import (
    DENSE,
    RRF_K,
    SPARSE,
    CollectionExists,
    CollectionNotFound,
    CollectionSpec,
    Distance,
    Hit,
    PointIn,
    Query,
    StoreKind,
    VectorStore,
    prefetch_depth,
)
from llmops_retriever.store.edge_collection import SPEC_FILE, EdgeCollection
from llmops_retriever.store.edge_index import Indexer

logger = logging.getLogger(__name__)

_DISTANCES = {Distance.cosine: qe.Distance.Cosine, Distance.dot: qe.Distance.Dot, Distance.euclid: qe.Distance.Euclid}


def to_edge(flt: f.Filter) -> qe.Filter:
    def condition(c: f.FieldCondition | f.Filter):
        if isinstance(c, f.Filter):
            return to_edge(c)
        if c.range is not None:
            r = c.range
            return qe.FieldCondition(key=c.key, range=qe.RangeFloat(gt=r.gt, gte=r.gte, lt=r.lt, lte=r.lte))
        m = c.match
        if m.value is not None:
            return qe.FieldCondition(key=c.key, match=qe.MatchValue(m.value))
        if m.any is not None:
            return qe.FieldCondition(key=c.key, match=qe.MatchAny(m.any))
        return qe.FieldCondition(key=c.key, match=qe.MatchExcept(m.except_))

    return qe.Filter(
        must=[condition(c) for c in flt.must] or None,
        should=[condition(c) for c in flt.should] or None,
        must_not=[condition(c) for c in flt.must_not] or None,
    )


def _hit(point) -> Hit:
    return Hit(id=str(point.id), score=getattr(point, "score", 0.0), payload=point.payload or {})


class EdgeStore(VectorStore):
    kind = StoreKind.edge

    def __init__(
        self,
        data_dir: str | Path,
        *,
        hnsw_m: int = 16,
        hnsw_ef_construct: int = 100,
        hnsw_ef: int = 128,
        index_after_writes: int = 5000,
        index_quiet_s: float = 2.0,
        index_check_s: float = 1.0,
        on_build: Callable[[str, float, bool], None] | None = None,
    ) -> None:
        self._root = Path(data_dir)
        self._hnsw = qe.HnswIndexConfig(m=hnsw_m, ef_construct=hnsw_ef_construct, full_scan_threshold=10_000)
        self._ef = hnsw_ef
        self._collections: dict[str, EdgeCollection] = {}
        self._admin = asyncio.Lock()  # create and delete, one at a time
        self._indexer = Indexer(
            lambda: list(self._collections.values()),
            after_writes=index_after_writes,
            quiet_s=index_quiet_s,
            check_s=index_check_s,
            on_build=on_build,
        )

    async def start(self) -> None:
        await asyncio.to_thread(self._open_all)
        self._indexer.start()

    def _open_all(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        for spec_file in sorted(self._root.glob(f"*/{SPEC_FILE}")):
            collection = EdgeCollection.open(spec_file.parent)
            self._collections[collection.name] = collection
        for leftover in self._root.iterdir():  # a create that crashed before writing its spec
            if leftover.is_dir() and not (leftover / SPEC_FILE).exists():
                shutil.rmtree(leftover, ignore_errors=True)
        logger.info("qdrant edge store opened", extra={"collections": len(self._collections), "dir": str(self._root)})

    async def aclose(self) -> None:
        await self._indexer.aclose()
        for collection in list(self._collections.values()):
            await asyncio.to_thread(collection.close)
        self._collections.clear()

    async def ping(self) -> None:
        if not self._root.is_dir():
            raise RuntimeError(f"data directory {self._root} is missing")

    def _get(self, name: str) -> EdgeCollection:
        collection = self._collections.get(name)
        if collection is None:
            raise CollectionNotFound(name)
        return collection

    async def create_collection(self, spec: CollectionSpec) -> None:
        async with self._admin:
            if spec.name in self._collections or (self._root / spec.name).exists():
                raise CollectionExists(spec.name)
            config = qe.EdgeConfig(
                vectors={DENSE: qe.EdgeVectorParams(size=spec.dimension, distance=_DISTANCES[spec.distance])},
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)} if spec.hybrid else None,
                hnsw_config=self._hnsw,
            )
            # Indexed payload fields: documents are found (replaced, deleted, updated) by these.
            setup = [
                qe.UpdateOperation.create_field_index("document_id", qe.PayloadSchemaType.Keyword),
                qe.UpdateOperation.create_field_index("chunk_index", qe.PayloadSchemaType.Integer),
            ]
            self._collections[spec.name] = await asyncio.to_thread(
                EdgeCollection.create, self._root / spec.name, spec, config, setup
            )

    async def list_collections(self) -> list[CollectionSpec]:
        return [c.spec for c in sorted(self._collections.values(), key=lambda c: c.name)]

    async def get_collection(self, name: str) -> CollectionSpec:
        return self._get(name).spec

    async def delete_collection(self, name: str) -> None:
        async with self._admin:
            collection = self._get(name)
            await self._indexer.cancel(name)
            del self._collections[name]
            await asyncio.to_thread(collection.close, remove=True)

    async def count(self, name: str, filter: f.Filter | None = None) -> int:
        request = qe.CountRequest(exact=True, filter=to_edge(filter) if filter else None)
        return await asyncio.to_thread(self._get(name).read, lambda shard: shard.count(request))

    async def upsert(self, name: str, points: list[PointIn]) -> None:
        def vectors(p: PointIn) -> dict:
            v = {DENSE: p.dense}
            if p.sparse is not None:
                v[SPARSE] = qe.SparseVector(indices=p.sparse.indices, values=p.sparse.values)
            return v

        operation = qe.UpdateOperation.upsert_points([qe.Point(p.id, vectors(p), p.payload) for p in points])
        await asyncio.to_thread(self._get(name).write, operation, points=len(points))

    async def delete(self, name: str, filter: f.Filter) -> None:
        operation = qe.UpdateOperation.delete_points_by_filter(to_edge(filter))
        await asyncio.to_thread(self._get(name).write, operation)

    async def set_payload(self, name: str, filter: f.Filter, payload: dict) -> None:
        operation = qe.UpdateOperation.set_payload_by_filter(to_edge(filter), payload)
        await asyncio.to_thread(self._get(name).write, operation)

    async def scroll(self, name: str, filter: f.Filter, limit: int) -> list[Hit]:
        request = qe.ScrollRequest(limit=limit, filter=to_edge(filter), with_payload=True)
        records, _ = await asyncio.to_thread(self._get(name).read, lambda shard: shard.scroll(request))
        return [_hit(r) for r in records]

    async def search(self, name: str, query: Query) -> list[Hit]:
        params = qe.SearchParams(hnsw_ef=self._ef, exact=query.exact)
        flt = to_edge(query.filter) if query.filter else None
        dense = qe.Query.Nearest(query.dense, using=DENSE)
        if query.sparse is None:
            request = qe.QueryRequest(
                limit=query.limit,
                query=dense,
                filter=flt,
                score_threshold=query.score_threshold,
                params=params,
                with_payload=True,
            )
        else:
            depth = prefetch_depth(query.limit)
            sparse = qe.Query.Nearest(
                qe.SparseVector(indices=query.sparse.indices, values=query.sparse.values), using=SPARSE
            )
            request = qe.QueryRequest(
                limit=query.limit,
                prefetches=[
                    qe.Prefetch(
                        limit=depth, query=dense, filter=flt, score_threshold=query.score_threshold, params=params
                    ),
                    qe.Prefetch(limit=depth, query=sparse, filter=flt),
                ],
                query=qe.Fusion.Rrf(k=RRF_K),
                with_payload=True,
            )
        points = await asyncio.to_thread(self._get(name).read, lambda shard: shard.query(request))
        return [_hit(p) for p in points]

    async def index_status(self, name: str) -> dict:
        collection = self._get(name)
        info = await asyncio.to_thread(collection.read, lambda shard: shard.info())
        return {
            "segments": info.segments_count,
            "indexed_vectors": info.indexed_vectors_count,
            "unindexed_writes": collection.writes_since_build,
            "building": self._indexer.building(name),
            "generation": collection.generation,
        }

    async def optimize(self, name: str) -> bool:
        await self._indexer.build(self._get(name))
        return True
