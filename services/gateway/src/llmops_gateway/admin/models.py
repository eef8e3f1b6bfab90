from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from llmops_common.sql import UTCDateTime
from llmops_gateway.db import Base


class AdminIdentity(Base):
    """Someone (or something) allowed on the admin API, with a role; beside the platform admin token."""

    __tablename__ = "admin_identities"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # admin, team-admin, viewer
    team: Mapped[str | None] = mapped_column(String(64), ForeignKey("teams.name"))  # a team-admin's team
    prefix: Mapped[str] = mapped_column(String(32))
    # HMAC-SHA256 of the token with the gateway's key secret, as for API keys; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """One admin action: who, what, when, the object before and after (public views: never a secret)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(200))  # "platform" (the admin token) or an identity's id
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))  # e.g. keys.create, routes.delete
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
