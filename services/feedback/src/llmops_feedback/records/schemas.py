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
    user_hash: str | None = None
    batch_id: str | None = None
    trace_id: str | None = None

    prompt_name: str | None = None
    prompt_version: str | None = None
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


class RequestSummary(BaseModel):
    """A row of the request log browser: enough to pick a request; ``GET /v1/requests/{id}`` has the rest."""

    request_id: str
    key_id: str | None
    route: str
    variant: str
    model: str | None
    status: int
    started_at: datetime
    latency_ms: float | None
    rating: str | None = Field(description="the current rating: up, down or null")
    prompt_preview: str | None
    answer_preview: str | None


class RequestPage(BaseModel):
    data: list[RequestSummary]
    next_cursor: str | None = Field(description="pass as ``before`` for the next (older) page; null on the last")
