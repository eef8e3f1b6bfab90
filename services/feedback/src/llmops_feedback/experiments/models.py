"""Experiments, the decisions taken on them, and the lease that lets one controller act at a time."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llmops_common.sql import UTCDateTime
from llmops_feedback.db import Base

OPEN_STATUSES = ("running", "halted")  # an experiment that still owns its route's split


class Experiment(Base):
    """Champion against challenger on one route: two of its variants, the challenger's share ramped in steps."""

    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    route: Mapped[str] = mapped_column(String(128), index=True)
    # Set to the route while the experiment is open, NULL once concluded: unique, so one open experiment a route.
    open_route: Mapped[str | None] = mapped_column(String(128), unique=True)
    champion: Mapped[str] = mapped_column(String(128))  # variant names of the route
    challenger: Mapped[str] = mapped_column(String(128))
    # Registry arms: the served name (<model>@<alias>), and the version the alias pointed to at creation.
    # Exposures of any other version are kept out of the readout (a moved alias halts the experiment).
    champion_model: Mapped[str | None] = mapped_column(String(256))
    challenger_model: Mapped[str | None] = mapped_column(String(256))
    champion_version: Mapped[str | None] = mapped_column(String(64))
    challenger_version: Mapped[str | None] = mapped_column(String(64))
    # After a promotion: what the champion alias and the champion variant were before, for a one-command rollback.
    previous_champion_version: Mapped[str | None] = mapped_column(String(64))
    # {"model", "upstream", "api_key_env"} (api_key_env recorded since routes name the inference serving token)
    previous_champion: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    status: Mapped[str] = mapped_column(String(16))  # running | halted | promoted | rolled_back | kept | stopped
    steps: Mapped[list] = mapped_column(JSON)  # challenger shares, e.g. [0.05, 0.25, 0.5]
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    share: Mapped[float] = mapped_column(Float)  # the challenger's share now
    policy: Mapped[dict] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer, default=0)  # bumped on every change: concurrent deciders lose
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    step_started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    concluded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ExperimentDecision(Base):
    """An action on an experiment with the evidence it was taken on; applied to the gateway and registry after."""

    __tablename__ = "experiment_decisions"
    __table_args__ = (Index("ix_experiment_decisions_experiment", "experiment_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(String(32), ForeignKey("experiments.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))  # start | ramp | promote | rollback | keep | halt | stop
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(64))  # "controller" or the admin's name
    share: Mapped[float] = mapped_column(Float)  # the challenger's share this decision sets
    applied: Mapped[bool] = mapped_column(Boolean, default=False)  # the gateway (and registry) follow it
    apply_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Lease(Base):
    """A named lease: whoever holds an unexpired one may act (the experiment controller, across replicas)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
