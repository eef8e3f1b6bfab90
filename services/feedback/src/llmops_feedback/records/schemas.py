"""The request log's API bodies besides the ingested record itself (``llmops_common.contracts.requestlog``)."""

from datetime import datetime

from pydantic import BaseModel, Field

from llmops_feedback.ratings.schemas import RatingPublic


class IngestResult(BaseModel):
    inserted: int
    duplicates: int


class RequestPublic(BaseModel):
    request_id: str
    key_id: str | None
    route: str
    variant: str
    model: str | None
    model_version: str | None = None
    kind: str
    stream: bool
    status: int
    prompt: list | str | None
    answer: str | None
    redacted: bool
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float | None
    ttft_ms: float | None
    retrieved_ids: list[str]
    error: str | None
    started_at: datetime
    finished_at: datetime
    rating: RatingPublic | None = Field(description="the current rating")
    rating_history: list[RatingPublic]
