from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llmops_common.sql import UTCDateTime
from llmops_feedback.db import Base


class Rating(Base):
    """A thumbs up or down on a request. Rating again adds a row; the newest by ``created_at`` is the current one
    (history stays). ``idempotency_key`` is unique per rater: the same rating delivered twice is stored once."""

    __tablename__ = "ratings"
    __table_args__ = (
        Index("ix_ratings_request_current", "request_id", "current"),
        Index("ux_ratings_rater_idempotency", "rated_by", "idempotency_key", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128), ForeignKey("request_log.request_id", ondelete="CASCADE"))
    rating: Mapped[str] = mapped_column(String(8))  # up | down
    comment: Mapped[str | None] = mapped_column(Text)
    correction: Mapped[str | None] = mapped_column(Text)
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    rated_by: Mapped[str | None] = mapped_column(String(64))  # key id, or "admin"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())  # when it was given (the gateway's clock for keys)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))  # None on ratings from before it existed


class PendingRating(Base):
    """A key's rating of a request whose record has not arrived yet (the gateway delivers records in batches, and
    spools them while this service is down). Attached when the record arrives and was made by ``key_id``;
    discarded otherwise, or when none arrives within the pending TTL."""

    __tablename__ = "pending_ratings"
    __table_args__ = (Index("ux_pending_ratings_key_idempotency", "key_id", "idempotency_key", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128), index=True)
    key_id: Mapped[str] = mapped_column(String(64))  # the claimed owner: checked against the record's key
    idempotency_key: Mapped[str] = mapped_column(String(128))
    rating: Mapped[str] = mapped_column(String(8))
    comment: Mapped[str | None] = mapped_column(Text)
    correction: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)  # the TTL counts from here
