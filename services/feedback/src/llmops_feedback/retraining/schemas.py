"""Retraining policies' API bodies."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmops_feedback.experiments.schemas import NAME_PATTERN

MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # the trainer's rule for registered model names


class RetrainingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(pattern=MODEL_NAME, description="registered model the adapter goes into, as @challenger")
    champion: str = Field(pattern=NAME_PATTERN, description="the route's variant the challenger is tested against")
    challenger: str = Field(default="challenger", pattern=NAME_PATTERN, description="variant name of the adapter")
    upstream: str | None = Field(
        default=None, max_length=512, description="OpenAI base URL serving the adapter; default: the champion's"
    )
    min_examples: int = Field(default=50, ge=1, le=1_000_000, description="new training examples that start a job")
    cooldown_s: float = Field(default=3600.0, ge=0, description="least time between two jobs")
    max_failures: int = Field(default=3, ge=1, le=100, description="consecutive failed jobs before it stops trying")
    job: dict[str, Any] = Field(default_factory=dict, description="trainer job fields: base_model, lora, training")
    experiment: dict[str, Any] = Field(default_factory=dict, description="the experiment policy of the canary")
    enabled: bool = True


class RetrainingSet(BaseModel):
    """Policies by route, as a platform configuration file holds them (``llmops apply`` validates them all first)."""

    model_config = ConfigDict(extra="forbid")

    policies: dict[str, RetrainingIn] = Field(default_factory=dict, max_length=10_000)


class RetrainingPublic(RetrainingIn):
    model_config = ConfigDict(from_attributes=True)

    route: str
    job_id: str | None
    job_state: str | None
    dataset_hash: str | None
    dataset_examples: int
    started_at: datetime | None
    failures: int
    experiment_id: str | None
    status: str | None
    updated_at: datetime


class RetrainingList(BaseModel):
    data: list[RetrainingPublic]
