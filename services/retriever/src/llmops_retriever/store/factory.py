from collections.abc import Callable

from llmops_retriever.settings import RetrieverSettings
from llmops_retriever.store.base import StoreKind, VectorStore


def make_store(
    settings: RetrieverSettings, *, on_build: Callable[[str, float, bool], None] | None = None
) -> VectorStore:
    # Imported per branch: each engine's module loads its own native library.
    match settings.store:
        case StoreKind.edge:
            from llmops_retriever.store.edge import EdgeStore

            return EdgeStore(
                settings.data_dir,
                hnsw_m=settings.hnsw_m,
                hnsw_ef_construct=settings.hnsw_ef_construct,
                hnsw_ef=settings.hnsw_ef,
                index_after_writes=settings.index_after_writes,
                index_quiet_s=settings.index_quiet_s,
                index_check_s=settings.index_check_s,
                on_build=on_build,
            )
        case StoreKind.qdrant:
            from llmops_retriever.store.qdrant import QdrantStore

            return QdrantStore(
                url=settings.qdrant_url,
                api_key=settings.qdrant_api_key,
                path=settings.qdrant_path,
                hnsw_ef=settings.hnsw_ef,
            )
