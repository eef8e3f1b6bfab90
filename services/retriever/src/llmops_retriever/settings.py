"""Retriever settings, all from ``RETRIEVER_*`` environment variables."""

from pydantic import Field, model_validator

from llmops_common.settings import ServiceSettings, require_secret, service_config
from llmops_retriever.store.base import StoreKind

DEV_ADMIN_TOKEN = "dev-admin-token"
DEV_READ_TOKEN = "dev-retriever-read-token"


class RetrieverSettings(ServiceSettings):
    model_config = service_config("RETRIEVER_")

    port: int = 8001

    # The admin token writes (collections, ingest, delete, metadata) and reads. The read token only searches and
    # reads collections and documents: it is the gateway's service token, so a leaked gateway config cannot
    # rewrite the corpus. Reads need a token at all because the chunks are the organisation's documents.
    admin_token: str | None = None
    read_token: str | None = None

    store: StoreKind = StoreKind.edge
    # Qdrant Edge: one shard directory per collection under here.
    data_dir: str = "./.llmops/retriever"
    # Qdrant server (store "qdrant"): its URL and API key; ":memory:" or qdrant_path select qdrant-client's local mode.
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    qdrant_path: str | None = None

    # The model new collections embed with, unless they name another. Names resolve to local directories only:
    # the bundled all-MiniLM-L6-v2 is built in, others are added here as {"name": "/path/to/model"}.
    embedding_model: str = "all-MiniLM-L6-v2"
    embedding_models: dict[str, str] = Field(default_factory=dict)
    embed_batch_size: int = Field(default=32, ge=1, le=1024)

    # Chunking defaults for new collections (in tokens of the collection's embedding model).
    chunk_size: int = Field(default=200, ge=16)
    chunk_overlap: int = Field(default=40, ge=0)

    max_upload_bytes: int = 20 * 1024 * 1024  # a file upload, before text extraction
    max_body_bytes: int = 8 * 1024 * 1024  # a JSON request
    max_documents_per_request: int = 256
    max_top_k: int = 100
    ingest_concurrency: int = Field(default=2, ge=1)  # ingests embedding at once; more queue (CPU-bound)

    # Qdrant Edge's HNSW index: built by ``optimize()`` in a child process on a copy of the shard, swapped in
    # when done, so search never stalls (optimize holds the GIL for the whole build, a minute at 100k points).
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 128  # search-time candidate list; recall@10 vs exact search is measured in bench/
    index_after_writes: int = Field(default=5000, ge=1)  # points written since the last build that start one
    index_quiet_s: float = 2.0  # ... once writes have paused this long (an ingest in progress is not copied)
    index_check_s: float = 1.0

    @model_validator(mode="after")
    def _store_configured(self) -> "RetrieverSettings":
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("RETRIEVER_CHUNK_OVERLAP must be smaller than RETRIEVER_CHUNK_SIZE")
        if self.store is StoreKind.qdrant and not (self.qdrant_url or self.qdrant_path):
            raise ValueError("the qdrant store needs RETRIEVER_QDRANT_URL (or RETRIEVER_QDRANT_PATH for local mode)")
        return self

    def admin_token_value(self) -> str:
        return require_secret(
            self.admin_token, name="RETRIEVER_ADMIN_TOKEN", dev_mode=self.dev_mode, dev_default=DEV_ADMIN_TOKEN
        )

    def read_token_value(self) -> str:
        return require_secret(
            self.read_token, name="RETRIEVER_READ_TOKEN", dev_mode=self.dev_mode, dev_default=DEV_READ_TOKEN
        )
