from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llmops_common.sql import UTCDateTime
from llmops_feedback.db import Base


class Rating(Base):
    """A thumbs up or down on a request. Rating again adds a row and makes it the current one: history stays."""

    __tablename__ = "ratings"
    __table_args__ = (Index("ix_ratings_request_current", "request_id", "current"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128), ForeignKey("request_log.request_id", ondelete="CASCADE"))
    rating: Mapped[str] = mapped_column(String(8))  # up | down
    comment: Mapped[str | None] = mapped_column(Text)
    correction: Mapped[str | None] = mapped_column(Text)
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    rated_by: Mapped[str | None] = mapped_column(String(64))  # key id, or "admin"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
