"""Retraining policies: per route, when enough new training examples arrived, train a challenger and canary it."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llmops_common.sql import UTCDateTime
from llmops_feedback.db import Base


class RetrainingPolicy(Base):
    __tablename__ = "retraining_policies"

    route: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128))  # the registered model trained into (<name>@challenger)
    champion: Mapped[str] = mapped_column(String(128))  # the route's variant the challenger is tested against
    challenger: Mapped[str] = mapped_column(String(128))  # the variant name the adapter is served under
    upstream: Mapped[str | None] = mapped_column(String(512))  # where it is served; default: the champion's
    min_examples: Mapped[int] = mapped_column(Integer)
    cooldown_s: Mapped[float] = mapped_column(Float)
    max_failures: Mapped[int] = mapped_column(Integer)
    job: Mapped[dict] = mapped_column(JSON)  # the trainer job's other fields: base_model, lora, training
    experiment: Mapped[dict] = mapped_column(JSON)  # the experiment policy the challenger is canaried with
    gate: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))  # the offline gate before the canary, if any
    enabled: Mapped[bool] = mapped_column(Boolean)
    # Where it stands (written by the controller).
    job_id: Mapped[str | None] = mapped_column(String(64))
    job_state: Mapped[str | None] = mapped_column(String(16))
    dataset_hash: Mapped[str | None] = mapped_column(String(64))  # sha256 of the last job's training lines
    dataset_examples: Mapped[int] = mapped_column(Integer, default=0)  # how many lines it had
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the last job's submission
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive failed jobs
    # The last job's adapter as the trainer reported it once the job succeeded: what the gate and the canary serve.
    served_model: Mapped[str | None] = mapped_column(String(256))
    registered_version: Mapped[str | None] = mapped_column(String(64))
    experiment_id: Mapped[str | None] = mapped_column(String(32))  # the experiment the last adapter went into
    # The last offline gate: the job whose adapter it judged, its comparison, verdict (pass | block | failed; None
    # while it runs), MLflow run and reason. A blocked adapter gets no canary; the next job starts a new gate.
    gate_job_id: Mapped[str | None] = mapped_column(String(64))
    gate_comparison_id: Mapped[str | None] = mapped_column(String(32))
    gate_verdict: Mapped[str | None] = mapped_column(String(16))
    gate_run_id: Mapped[str | None] = mapped_column(String(64))
    gate_reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text)  # the controller's last word on it, for people
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
