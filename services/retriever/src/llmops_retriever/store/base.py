"""The store interface: what the retriever needs from a vector engine, and the engines that provide it."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from llmops_retriever.store.filters import Filter

DENSE = "dense"  # the named vectors of every collection
SPARSE = "bm25"
RRF_K = 60  # the constant of the original RRF paper; both engines are given it explicitly


def prefetch_depth(limit: int) -> int:
    """Candidates each leg of a hybrid search contributes to the fusion: deep enough that a chunk ranked well
    by one leg and poorly by the other still reaches the fused top ``limit``."""
    return max(4 * limit, 40)


class StoreKind(StrEnum):
    edge = "edge"  # Qdrant Edge: the engine in-process, one shard per collection on disk (embedded default)
    qdrant = "qdrant"  # a Qdrant server through qdrant-client (compose, Helm); its local mode in tests


class Distance(StrEnum):
    cosine = "cosine"
    dot = "dot"
    euclid = "euclid"


class CollectionSpec(BaseModel):
    """A collection as it is stored: everything needed to ingest into it and search it the same way later."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    embedding_model: str
    dimension: int
    distance: Distance
    hybrid: bool  # a BM25 sparse vector per chunk too, fused with the dense results by RRF
    chunk_size: int
    chunk_overlap: int
    created_at: float = Field(description="epoch seconds")


@dataclass(frozen=True, slots=True)
class SparseVec:
    indices: list[int]
    values: list[float]


@dataclass(slots=True)
class PointIn:
    id: str
    dense: list[float]
    sparse: SparseVec | None
    payload: dict


@dataclass(slots=True)
class Hit:
    id: str
    score: float
    payload: dict


@dataclass(frozen=True, slots=True)
class Query:
    dense: list[float]
    sparse: SparseVec | None  # set for a hybrid search
    limit: int
    filter: Filter | None = None
    score_threshold: float | None = None  # on the dense similarity; the fused RRF score has no absolute scale
    exact: bool = False  # brute force, for measuring the index's recall


class CollectionNotFound(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"collection {name!r} not found")
        self.name = name


class CollectionExists(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"collection {name!r} already exists")
        self.name = name


class VectorStore(ABC):
    """One engine holding many collections. Methods raise ``CollectionNotFound`` for an unknown collection."""

    kind: StoreKind

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    @abstractmethod
    async def ping(self) -> None:
        """Raises if the engine cannot serve."""

    @abstractmethod
    async def create_collection(self, spec: CollectionSpec) -> None:
        """Raises ``CollectionExists``."""

    @abstractmethod
    async def list_collections(self) -> list[CollectionSpec]: ...

    @abstractmethod
    async def get_collection(self, name: str) -> CollectionSpec: ...

    @abstractmethod
    async def delete_collection(self, name: str) -> None: ...

    @abstractmethod
    async def count(self, name: str, filter: Filter | None = None) -> int: ...

    @abstractmethod
    async def upsert(self, name: str, points: list[PointIn]) -> None: ...

    @abstractmethod
    async def delete(self, name: str, filter: Filter) -> None: ...

    @abstractmethod
    async def set_payload(self, name: str, filter: Filter, payload: dict) -> None:
        """Sets the given top-level payload keys (replacing their values) on every point matching ``filter``."""

    @abstractmethod
    async def scroll(self, name: str, filter: Filter, limit: int) -> list[Hit]:
        """Points matching ``filter`` (score 0), at most ``limit``."""

    @abstractmethod
    async def search(self, name: str, query: Query) -> list[Hit]: ...

    async def index_status(self, name: str) -> dict:
        """Engine-specific index state, shown when a collection is described."""
        return {}

    async def optimize(self, name: str) -> bool:
        """Builds the collection's index now and waits; False if the engine does that by itself."""
        return False
