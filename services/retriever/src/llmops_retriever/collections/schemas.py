from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from llmops_retriever.store.base import Distance

# Safe as a directory name and a URL path segment.
COLLECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=COLLECTION_NAME_PATTERN)
    embedding_model: str | None = Field(default=None, description="default: the service's RETRIEVER_EMBEDDING_MODEL")
    dimension: int | None = Field(
        default=None, ge=1, le=8192, description="checked against the model's; default: the model's"
    )
    distance: Distance = Distance.cosine
    hybrid: bool = Field(default=False, description="also index BM25 sparse vectors and fuse both rankings (RRF)")
    chunk_size: int | None = Field(default=None, ge=16, description="tokens per chunk; default: RETRIEVER_CHUNK_SIZE")
    chunk_overlap: int | None = Field(default=None, ge=0, description="tokens shared by neighbouring chunks")


class CollectionPublic(BaseModel):
    name: str
    embedding_model: str
    dimension: int
    distance: Distance
    hybrid: bool
    chunk_size: int
    chunk_overlap: int
    created_at: datetime
    points_count: int | None = Field(default=None, description="chunks stored (when described)")
    documents_count: int | None = Field(default=None, description="documents stored (when described)")
    index: dict | None = Field(default=None, description="engine-specific index state (when described)")


class CollectionList(BaseModel):
    data: list[CollectionPublic]
