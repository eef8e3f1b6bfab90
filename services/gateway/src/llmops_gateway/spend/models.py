from datetime import datetime

from sqlalchemy import JSON, BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from llmops_common.sql import UTCDateTime
from llmops_gateway.db import Base


class Price(Base):
    """One version of a variant's price. Never updated: a new price is a new row, so spend rows that name a
    price id keep the price they were charged at."""

    __tablename__ = "prices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    variant: Mapped[str] = mapped_column(String(128), index=True)
    input_nanos: Mapped[int] = mapped_column(BigInteger)  # per token
    output_nanos: Mapped[int] = mapped_column(BigInteger)
    cached_input_nanos: Mapped[int | None] = mapped_column(BigInteger)  # None: cached input costs as input
    # A self-hosted price's {"gpu_hour_cost", "tokens_per_s"} (decimal strings, as given); None: set per token.
    derived_from: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SpendRow(Base):
    """Spend summed per hour, key, route, variant, prompt version and price version: one row per combination, not
    per request (a row per request is the table scan that saturates a peer's PostgreSQL). Replicas add to it with
    upserts."""

    __tablename__ = "spend"
    __table_args__ = (
        UniqueConstraint("hour", "key_id", "team", "route", "variant", "prompt_version", "price_id", name="uq_spend"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    key_id: Mapped[str] = mapped_column(String(32))
    team: Mapped[str] = mapped_column(String(64))  # "": the key has no team
    route: Mapped[str] = mapped_column(String(128))
    variant: Mapped[str] = mapped_column(String(128))
    # "<name>/<version>" of a registered prompt, a built-in or inline template's name; "": the request had none.
    prompt_version: Mapped[str] = mapped_column(String(192))
    price_id: Mapped[int] = mapped_column(Integer)  # 0: the variant had no price (cost 0)
    requests: Mapped[int] = mapped_column(BigInteger)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_nanos: Mapped[int] = mapped_column(BigInteger)
