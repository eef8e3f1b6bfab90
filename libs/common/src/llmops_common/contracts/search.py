"""Search results: what the retriever's ``POST /v1/collections/{name}/search`` answers and the gateway reads for RAG.

The request body stays the retriever's own (its payload filter grammar is the retriever's business); the gateway
sends a plain JSON object and reads this answer.
"""

from typing import Any

from pydantic import BaseModel, Field


class SearchHit(BaseModel):
    """One chunk of a document, nearest to the query."""

    id: str = Field(description="the chunk's point id (what the request log records in retrieved_ids)")
    document_id: str
    chunk_index: int
    score: float = Field(description="dense similarity, or the RRF fusion score in hybrid mode")
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: str | None = None


class SearchResponse(BaseModel):
    data: list[SearchHit]
    hybrid: bool
    took_ms: float
