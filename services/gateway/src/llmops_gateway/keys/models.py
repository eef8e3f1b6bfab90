from datetime import datetime

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from llmops_common.sql import UTCDateTime
from llmops_gateway.db import Base


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
    allowed_routes: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
