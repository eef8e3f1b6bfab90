"""The request-log record: the gateway emits one per finished request, the feedback service ingests it.

Unknown fields are ignored, so a gateway that sends more than a feedback service knows (a rolling upgrade) is not
refused; a new field is added here first, optional, and both sides follow.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_EPOCH_S = 253402300799  # 9999-12-31T23:59:59Z: the latest time SQL datetimes hold
MAX_SQL_INTEGER = 2**31 - 1  # token counts are stored as SQL INTEGER: larger is a 422 here, not a 500 at insert
MAX_SQL_BIGINT = 2**63 - 1


class Usage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt_tokens: int = Field(default=0, ge=0, le=MAX_SQL_INTEGER)
    completion_tokens: int = Field(default=0, ge=0, le=MAX_SQL_INTEGER)


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
    user_hash: str | None = Field(
        default=None,
        max_length=32,
        description="a pseudonymous id of the assignment unit (the request's `user`, else its key): the unit of "
        "sticky routing, so experiments count users, not requests, in their sample-ratio check",
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
    batch_id: str | None = Field(
        default=None,
        max_length=64,
        description="the batch this request was a line of (OpenAI Batches API); None: online",
    )
    team: str | None = Field(default=None, max_length=64, description="the key's team")
    rule: str | None = Field(default=None, max_length=128, description="the routing rule that chose the variant")
    prompt_name: str | None = Field(
        default=None,
        max_length=128,
        description="the prompt the request was sent with: a registered prompt's name, else a built-in or inline "
        "template's version",
    )
    prompt_version: str | None = Field(
        default=None, max_length=32, description="the registered prompt's version (None: not a registered prompt)"
    )
    cost_nanos: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SQL_BIGINT,
        description="what the request cost at its variant's price, in 1e-9 currency units",
    )
    trace_id: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{32}$",
        description="the request's OpenTelemetry trace id (32 hex digits), when the gateway traces",
    )
    started_at: float = Field(ge=0, le=MAX_EPOCH_S, description="epoch seconds")
    finished_at: float = Field(ge=0, le=MAX_EPOCH_S, description="epoch seconds")


class RequestLogBatch(BaseModel):
    """The body of the feedback service's ``POST /v1/requests``: records delivered at least once (idempotent on
    ``request_id``)."""

    model_config = ConfigDict(extra="forbid")

    records: list[RequestLogRecord] = Field(min_length=1)
