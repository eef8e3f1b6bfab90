from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from llmops_common.sql import UTCDateTime
from llmops_gateway.db import Base


class Team(Base):
    """A team owns keys; its budget bounds the spend of all its keys together."""

    __tablename__ = "teams"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str | None] = mapped_column(String(500))
    budget_daily_nanos: Mapped[int | None] = mapped_column(BigInteger)
    budget_monthly_nanos: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
