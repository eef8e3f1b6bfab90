from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from llmops_common.sql import UTCDateTime
from llmops_feedback.db import Base


class Score(Base):
    """A scorer's judgement of a logged request, beside its human ratings. One row per request, rubric version and
    scorer (``judge:<route>`` or ``deterministic``): scoring again replaces it. ``queued`` rows are the online
    sample handed to the workers and not judged yet."""

    __tablename__ = "eval_scores"
    __table_args__ = (
        Index("ux_eval_scores_request_rubric_scorer", "request_id", "rubric", "rubric_version", "scorer", unique=True),
        Index("ix_eval_scores_rubric_status", "rubric", "rubric_version", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128), ForeignKey("request_log.request_id", ondelete="CASCADE"))
    rubric: Mapped[str] = mapped_column(String(64))
    rubric_version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(16))  # of the rubric's text when it scored
    scorer: Mapped[str] = mapped_column(String(160))
    origin: Mapped[str] = mapped_column(String(16))  # online | api
    status: Mapped[str] = mapped_column(String(16))  # queued | ok | failed
    score: Mapped[float | None] = mapped_column(Float)  # in [0, 1]
    raw_score: Mapped[int | None] = mapped_column(Integer)  # a judge's 1..5
    rationale: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EvalSet(Base):
    """A versioned eval set: its items (question, reference, sources, where it came from) and a version that is the
    hash of its canonical JSONL, so the same items are always the same version."""

    __tablename__ = "eval_sets"
    __table_args__ = (Index("ux_eval_sets_name_version", "name", "version", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16))  # upload | feedback
    size: Mapped[int] = mapped_column(Integer)
    items: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Comparison(Base):
    """An offline pairwise gate: an eval set (or replayed prompts) answered by a champion and a challenger route,
    judged pairwise, with the verdict and the MLflow run it was logged to."""

    __tablename__ = "eval_comparisons"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # queued | running | done | failed
    spec: Mapped[dict] = mapped_column(JSON)  # what was asked (routes, rubric, set, margin, model version)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    wins: Mapped[int] = mapped_column(Integer, default=0)  # the challenger's
    ties: Mapped[int] = mapped_column(Integer, default=0)
    losses: Mapped[int] = mapped_column(Integer, default=0)
    verdict: Mapped[str | None] = mapped_column(String(16))  # pass | block
    reason: Mapped[str | None] = mapped_column(Text)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    rows: Mapped[list] = mapped_column(JSON, default=list)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
