from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llmops_common.sql import UTCDateTime
from llmops_trainer.db import Base


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINISHED = (JobState.succeeded, JobState.failed, JobState.cancelled)


class TrainingDataset(Base):
    """A validated, scrubbed, deduplicated dataset as canonical JSONL, keyed by its sha256. Stored in SQL so that a
    worker on another machine reads exactly what the API validated, and a job can be retried or audited later."""

    __tablename__ = "training_datasets"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    examples: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TrainingJob(Base):
    __tablename__ = "training_jobs"
    __table_args__ = (
        Index("ix_training_jobs_state_heartbeat", "state", "heartbeat_at"),
        Index("ix_training_jobs_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    base_model: Mapped[str] = mapped_column(String(256))
    model_name: Mapped[str] = mapped_column(String(256))
    alias: Mapped[str | None] = mapped_column(String(256))
    hyperparameters: Mapped[dict] = mapped_column(JSON)  # {"lora": {...}, "training": {...}}
    dataset_sha256: Mapped[str] = mapped_column(String(64), ForeignKey("training_datasets.sha256"))
    dataset_info: Mapped[dict] = mapped_column(JSON)  # source and counts (lines, duplicates, scrubbed, train, eval)

    attempt: Mapped[int] = mapped_column(Integer, default=0)  # starts so far; the running attempt fences writes
    worker: Mapped[str | None] = mapped_column(String(256))
    task_id: Mapped[str | None] = mapped_column(String(64))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    epoch: Mapped[float | None] = mapped_column(Float)
    loss: Mapped[float | None] = mapped_column(Float)
    eval_loss: Mapped[float | None] = mapped_column(Float)
    eta_s: Mapped[float | None] = mapped_column(Float)

    mlflow_experiment_id: Mapped[str | None] = mapped_column(String(64))
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    registered_version: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
