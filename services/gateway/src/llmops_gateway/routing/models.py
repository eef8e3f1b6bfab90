from datetime import datetime

from sqlalchemy import JSON, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from llmops_common.sql import UTCDateTime
from llmops_gateway.db import Base


class Route(Base):
    """A route is the ``model`` name clients ask for; its spec (variants, fallbacks, limits) is one JSON document."""

    __tablename__ = "routes"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    spec: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RouteRevision(Base):
    """One change of a route: the whole spec after it (None: deleted), who made it, when, and what changed.

    Written in the transaction of the change itself (``routing.service``), so the history never misses a change
    nor records one that was rolled back. Revisions outlive the route: a deleted route can be reverted."""

    __tablename__ = "route_revisions"
    __table_args__ = (UniqueConstraint("route", "revision", name="uq_route_revisions_route_revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    route: Mapped[str] = mapped_column(String(128), index=True)
    revision: Mapped[int] = mapped_column(Integer)  # 1, 2, … per route name, never reused
    action: Mapped[str] = mapped_column(String(16))  # create, update, delete, revert
    spec: Mapped[dict | None] = mapped_column(JSON)
    changes: Mapped[list] = mapped_column(JSON)  # ["variants.0.weight: 90 -> 50", …]
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
