from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmops_feedback.ratings.schemas import RatingPublic


class Usage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)


class RequestRecordIn(BaseModel):
    """A request log record as the gateway emits it (unknown fields are ignored, for forward compatibility)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value):
        return value.replace("\x00", "\ufffd") if isinstance(value, str) else value

    request_id: str = Field(min_length=1, max_length=128)
    key_id: str | None = Field(default=None, max_length=64)
    route: str = Field(min_length=1, max_length=128)
    variant: str = Field(min_length=1, max_length=128)
    model: str | None = Field(default=None, max_length=256)
    kind: Literal["chat", "text"] = "chat"
    stream: bool = False
    status: int = Field(ge=100, le=599)
    prompt: list | str | None = None
    answer: str | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_ms: float | None = Field(default=None, ge=0)
    ttft_ms: float | None = Field(default=None, ge=0)
    retrieved_ids: list[str] = Field(default_factory=list)
    error: str | None = None
    started_at: float = Field(ge=0, le=253402300799, description="epoch seconds")
    finished_at: float = Field(ge=0, le=253402300799, description="epoch seconds")


class IngestBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[RequestRecordIn] = Field(min_length=1)


class IngestResult(BaseModel):
    inserted: int
    duplicates: int


class RequestPublic(BaseModel):
    request_id: str
    key_id: str | None
    route: str
    variant: str
    model: str | None
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
