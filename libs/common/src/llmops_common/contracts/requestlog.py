"""The request-log record: the gateway emits one per finished request, the feedback service ingests it.

Unknown fields are ignored, so a gateway that sends more than a feedback service knows (a rolling upgrade) is not
refused; a new field is added here first, optional, and both sides follow.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_EPOCH_S = 253402300799  # 9999-12-31T23:59:59Z: the latest time SQL datetimes hold


class Usage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)


class RequestLogRecord(BaseModel):
    """One finished request as the gateway saw it. NUL characters in strings become U+FFFD (PostgreSQL refuses
    them in text)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value):
        return value.replace("\x00", "\ufffd") if isinstance(value, str) else value

    request_id: str = Field(min_length=1, max_length=128)
    key_id: str | None = Field(default=None, max_length=64)
    route: str = Field(min_length=1, max_length=128)
    variant: str = Field(min_length=1, max_length=128)
    model: str | None = Field(default=None, max_length=256, description="the upstream model or adapter that answered")
    model_version: str | None = Field(
        default=None, max_length=64, description="the registry version behind an adapter alias, as the upstream said"
    )
    kind: Literal["chat", "text"] = "chat"
    stream: bool = False
    status: int = Field(ge=100, le=599)
    prompt: list | str | None = Field(default=None, description="chat messages, or a completion's prompt")
    answer: str | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_ms: float | None = Field(default=None, ge=0)
    ttft_ms: float | None = Field(default=None, ge=0)
    retrieved_ids: list[str] = Field(default_factory=list, description="the search hits' ids (RAG)")
    error: str | None = None
    started_at: float = Field(ge=0, le=MAX_EPOCH_S, description="epoch seconds")
    finished_at: float = Field(ge=0, le=MAX_EPOCH_S, description="epoch seconds")


class RequestLogBatch(BaseModel):
    """The body of the feedback service's ``POST /v1/requests``: records delivered at least once (idempotent on
    ``request_id``)."""

    model_config = ConfigDict(extra="forbid")

    records: list[RequestLogRecord] = Field(min_length=1)
