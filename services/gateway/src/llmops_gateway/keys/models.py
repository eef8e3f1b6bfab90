from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from llmops_common.sql import UTCDateTime
from llmops_gateway.db import Base
from llmops_gateway.teams.models import Team


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # The first characters of the secret, to recognise a key in lists; never enough to use it.
    prefix: Mapped[str] = mapped_column(String(32))
    # HMAC-SHA256 of the whole secret with the gateway's key secret; the secret itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    tpd: Mapped[int | None] = mapped_column(Integer)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    allowed_routes: Mapped[list[str] | None] = mapped_column(JSON)
    # RAG collections the key may retrieve from, within each route's own policy; None: any the route allows.
    allowed_collections: Mapped[list[str] | None] = mapped_column(JSON)
    tier: Mapped[str | None] = mapped_column(String(32))  # a label routing rules match on, e.g. "free", "pro"
    team: Mapped[str | None] = mapped_column(String(64), ForeignKey("teams.name"), index=True)
    budget_daily_nanos: Mapped[int | None] = mapped_column(BigInteger)
    budget_monthly_nanos: Mapped[int | None] = mapped_column(BigInteger)
    # Loaded with the key in one query: the hot path's key cache carries the team's budget too.
    team_row: Mapped[Team | None] = relationship(lazy="joined")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
