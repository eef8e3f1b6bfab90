from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llmops_common.sql import UTCDateTime
from llmops_feedback.db import Base


class RequestRecord(Base):
    """One finished request as the gateway saw it: the "inference table"."""

    __tablename__ = "request_log"
    __table_args__ = (
        Index("ix_request_log_route_variant_started", "route", "variant", "started_at"),
        Index("ix_request_log_started", "started_at"),
    )

    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    key_id: Mapped[str | None] = mapped_column(String(64), index=True)
    route: Mapped[str] = mapped_column(String(128))
    variant: Mapped[str] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(256))  # the upstream model or adapter that answered
    model_version: Mapped[str | None] = mapped_column(String(64))  # the registry version behind an adapter alias
    # Pseudonymous assignment unit (the client's user, else its key): experiments count users with it
    user_hash: Mapped[str | None] = mapped_column(String(32))
    # The batch this request was a line of (the gateway's Batches API); None: an online request
    batch_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # The request's OpenTelemetry trace (32 hex digits) when the gateway traces: from a record to its trace
    trace_id: Mapped[str | None] = mapped_column(String(32), index=True)

    # The prompt it was sent with: a registered prompt's name and version; a built-in template's name, no version
    prompt_name: Mapped[str | None] = mapped_column(String(128))
    prompt_version: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # chat | text
    stream: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[list | str | None] = mapped_column(JSON(none_as_null=True))  # None when text is not stored
    answer: Mapped[str | None] = mapped_column(Text)
    redacted: Mapped[bool] = mapped_column(Boolean, default=False)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    retrieved_ids: Mapped[list] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
