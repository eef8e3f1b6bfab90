import asyncio
from dataclasses import dataclass

from llmops_retriever.embedding.models import EmbeddingModels
from llmops_retriever.metrics import RetrieverMetrics
from llmops_retriever.settings import RetrieverSettings
from llmops_retriever.store.base import VectorStore


@dataclass
class RetrieverState:
    """Everything one retriever process holds, built in the lifespan; ``request.app.state.retriever``."""

    settings: RetrieverSettings
    admin_token: str
    read_token: str
    store: VectorStore
    models: EmbeddingModels
    metrics: RetrieverMetrics
    ingest_slots: asyncio.Semaphore  # embedding is CPU-bound: a few ingests at once, the rest wait their turn
