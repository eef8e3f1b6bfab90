"""A Qdrant server through qdrant-client (compose, Helm). qdrant-client's local mode (":memory:" or a path)
speaks the same client API, so the same code and the same contract tests run against it without a server.
Local mode is brute force and runs in the event loop: for tests and small data only.

A collection's spec lives in the Qdrant collection's own metadata (``{"llmops": {...}}``), so every replica
of the retriever, and a restarted one, sees the same collections; Qdrant collections without it are not ours
and are left alone.
"""

import time

from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import UnexpectedResponse

from llmops_common import tracing
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

_DISTANCES = {Distance.cosine: qm.Distance.COSINE, Distance.dot: qm.Distance.DOT, Distance.euclid: qm.Distance.EUCLID}
_META_KEY = "llmops"
_SPEC_TTL_S = 5.0  # a collection deleted through another replica is noticed within this (or at the next miss)


def to_qdrant(flt: f.Filter) -> qm.Filter:
    def condition(c: f.FieldCondition | f.Filter):
        if isinstance(c, f.Filter):
            return to_qdrant(c)
        if c.range is not None:
            r = c.range
            return qm.FieldCondition(key=c.key, range=qm.Range(gt=r.gt, gte=r.gte, lt=r.lt, lte=r.lte))
        m = c.match
        if m.value is not None:
            return qm.FieldCondition(key=c.key, match=qm.MatchValue(value=m.value))
        if m.any is not None:
            return qm.FieldCondition(key=c.key, match=qm.MatchAny(any=m.any))
        return qm.FieldCondition(key=c.key, match=qm.MatchExcept(**{"except": m.except_}))

    return qm.Filter(
        must=[condition(c) for c in flt.must] or None,
        should=[condition(c) for c in flt.should] or None,
        must_not=[condition(c) for c in flt.must_not] or None,
    )


def _sparse(vector) -> qm.SparseVector:
    return qm.SparseVector(indices=vector.indices, values=vector.values)


class QdrantStore(VectorStore):
    kind = StoreKind.qdrant

    def __init__(
        self, *, url: str | None = None, api_key: str | None = None, path: str | None = None, hnsw_ef: int = 128
    ) -> None:
        self._local = path is not None or url == ":memory:"
        if path is not None:
            self._client = AsyncQdrantClient(path=path)
        elif url == ":memory:":
            self._client = AsyncQdrantClient(location=":memory:")
        else:
            # traceparent on every REST call to the server, as on every other call between services; qdrant-client
            # hands extra arguments to its httpx client (documented). Nothing with tracing off.
            hooks = tracing.httpx_event_hooks()
            self._client = AsyncQdrantClient(
                url=url, api_key=api_key, timeout=10, **({"event_hooks": hooks} if hooks else {})
            )
        self._ef = hnsw_ef
        self._specs: dict[str, tuple[CollectionSpec, float]] = {}

    async def aclose(self) -> None:
        await self._client.close()

    async def ping(self) -> None:
        await self._client.get_collections()

    async def create_collection(self, spec: CollectionSpec) -> None:
        if await self._client.collection_exists(spec.name):
            raise CollectionExists(spec.name)
        await self._client.create_collection(
            spec.name,
            vectors_config={DENSE: qm.VectorParams(size=spec.dimension, distance=_DISTANCES[spec.distance])},
            sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)} if spec.hybrid else None,
            metadata={_META_KEY: spec.model_dump(mode="json")},
        )
        if not self._local:  # local mode has no payload indexes (and says so in a warning)
            for field, schema in (
                ("document_id", qm.PayloadSchemaType.KEYWORD),
                ("chunk_index", qm.PayloadSchemaType.INTEGER),
            ):
                await self._client.create_payload_index(spec.name, field, field_schema=schema, wait=True)
        self._specs[spec.name] = (spec, time.monotonic())

    async def list_collections(self) -> list[CollectionSpec]:
        specs = []
        for description in (await self._client.get_collections()).collections:
            try:
                specs.append(await self.get_collection(description.name, fresh=True))
            except CollectionNotFound:
                continue  # not one of ours, or deleted meanwhile
        return sorted(specs, key=lambda s: s.name)

    async def get_collection(self, name: str, *, fresh: bool = False) -> CollectionSpec:
        cached = self._specs.get(name)
        if cached and not fresh and time.monotonic() - cached[1] < _SPEC_TTL_S:
            return cached[0]
        try:
            info = await self._client.get_collection(name)
        except (ValueError, UnexpectedResponse) as exc:
            self._specs.pop(name, None)
            raise CollectionNotFound(name) from exc
        metadata = (info.config.metadata or {}).get(_META_KEY)
        if not metadata:
            raise CollectionNotFound(name)
        spec = CollectionSpec.model_validate(metadata)
        self._specs[name] = (spec, time.monotonic())
        return spec

    async def delete_collection(self, name: str) -> None:
        await self.get_collection(name, fresh=True)
        await self._client.delete_collection(name)
        self._specs.pop(name, None)

    async def _checked(self, name: str, call):
        """Runs ``call``; a collection that vanished under it (another replica deleted it) is a 404."""
        try:
            return await call
        except (ValueError, UnexpectedResponse) as exc:
            if isinstance(exc, UnexpectedResponse) and exc.status_code != 404:
                raise
            if isinstance(exc, ValueError) and "not found" not in str(exc):
                raise
            self._specs.pop(name, None)
            raise CollectionNotFound(name) from exc

    async def count(self, name: str, filter: f.Filter | None = None) -> int:
        flt = to_qdrant(filter) if filter else None
        return (await self._checked(name, self._client.count(name, count_filter=flt, exact=True))).count

    async def upsert(self, name: str, points: list[PointIn]) -> None:
        structs = [
            qm.PointStruct(
                id=p.id,
                vector={DENSE: p.dense, **({SPARSE: _sparse(p.sparse)} if p.sparse is not None else {})},
                payload=p.payload,
            )
            for p in points
        ]
        await self._checked(name, self._client.upsert(name, points=structs, wait=True))

    async def delete(self, name: str, filter: f.Filter) -> None:
        selector = qm.FilterSelector(filter=to_qdrant(filter))
        await self._checked(name, self._client.delete(name, points_selector=selector, wait=True))

    async def set_payload(self, name: str, filter: f.Filter, payload: dict) -> None:
        await self._checked(name, self._client.set_payload(name, payload=payload, points=to_qdrant(filter), wait=True))

    async def scroll(self, name: str, filter: f.Filter, limit: int) -> list[Hit]:
        call = self._client.scroll(name, scroll_filter=to_qdrant(filter), limit=limit, with_payload=True)
        records, _ = await self._checked(name, call)
        return [Hit(id=str(r.id), score=0.0, payload=r.payload or {}) for r in records]

    async def search(self, name: str, query: Query) -> list[Hit]:
        flt = to_qdrant(query.filter) if query.filter else None
        # Local mode is exact anyway (and warns about search params).
        params = None if self._local else qm.SearchParams(hnsw_ef=self._ef, exact=query.exact)
        if query.sparse is None:
            call = self._client.query_points(
                name,
                query=query.dense,
                using=DENSE,
                query_filter=flt,
                limit=query.limit,
                score_threshold=query.score_threshold,
                search_params=params,
                with_payload=True,
            )
        else:
            depth = prefetch_depth(query.limit)
            call = self._client.query_points(
                name,
                prefetch=[
                    qm.Prefetch(
                        query=query.dense,
                        using=DENSE,
                        filter=flt,
                        limit=depth,
                        score_threshold=query.score_threshold,
                        params=params,
                    ),
                    qm.Prefetch(query=_sparse(query.sparse), using=SPARSE, filter=flt, limit=depth),
                ],
                query=qm.RrfQuery(rrf=qm.Rrf(k=RRF_K)),
                limit=query.limit,
                with_payload=True,
            )
        result = await self._checked(name, call)
        return [Hit(id=str(p.id), score=p.score, payload=p.payload or {}) for p in result.points]
