"""The retriever's Prometheus metrics, on a registry of its own per app."""

from prometheus_client import CollectorRegistry, Counter, Histogram

from llmops_common.metrics import LATENCY_BUCKETS


class RetrieverMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.chunks_ingested = Counter(
            "llmops_retriever_chunks_ingested", "Chunks embedded and stored", ("collection",), registry=registry
        )
        self.documents_ingested = Counter(
            "llmops_retriever_documents_ingested",
            "Documents ingested (new or replaced)",
            ("collection",),
            registry=registry,
        )
        self.ingest_duration = Histogram(
            "llmops_retriever_ingest_duration_seconds",
            "Time to chunk, embed and store one ingest request",
            ("collection",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.searches = Counter(
            "llmops_retriever_searches", "Searches by mode (dense, hybrid)", ("collection", "mode"), registry=registry
        )
        self.search_duration = Histogram(
            "llmops_retriever_search_duration_seconds",
            "Search time, query embedding included",
            ("collection", "mode"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.embed_duration = Histogram(
            "llmops_retriever_embed_duration_seconds",
            "Time to embed one batch of texts",
            ("model",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.embeddings = Counter(
            "llmops_retriever_embeddings", "Inputs embedded through POST /v1/embeddings", ("model",), registry=registry
        )
        self.index_builds = Counter(
            "llmops_retriever_index_builds",
            "Background index builds by outcome",
            ("collection", "outcome"),
            registry=registry,
        )
        self.index_build_duration = Histogram(
            "llmops_retriever_index_build_duration_seconds",
            "Time to build and swap in a collection's index",
            ("collection",),
            buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800),
            registry=registry,
        )

    def on_build(self, collection: str, seconds: float, ok: bool) -> None:
        self.index_builds.labels(collection, "ok" if ok else "failed").inc()
        if ok:
            self.index_build_duration.labels(collection).observe(seconds)
