"""Retraining policies' API bodies."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmops_feedback.evaluation import rubrics
from llmops_feedback.evaluation.compare import PAIRWISE
from llmops_feedback.experiments.policy import ExperimentPolicy
from llmops_feedback.experiments.schemas import NAME_PATTERN

MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # the trainer's rule for registered model names


class GateIn(BaseModel):
    """The offline gate a trained challenger passes before its canary: the champion and the challenger answer the
    same questions (an eval set, or the route's recently logged prompts replayed), judged pairwise or by a rubric;
    the canary opens only when the challenger's losses do not exceed its wins by more than ``margin``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    rubric: str = Field(
        default=PAIRWISE, description="pairwise (an LLM judge, positions swapped) or a rubric (judge or deterministic)"
    )
    judge_route: str | None = Field(default=None, max_length=128, description="default: FEEDBACK_EVAL_JUDGE_ROUTE")
    eval_set: str | None = Field(default=None, max_length=128, description="an eval set's name")
    eval_set_version: str = Field(default="latest", max_length=16)
    replay: int | None = Field(
        default=None, ge=1, le=10_000, description="instead of an eval set: this many of the route's recent prompts"
    )
    replay_since_s: float = Field(default=7 * 86_400.0, gt=0, le=365 * 86_400.0, description="the replay's window")
    margin: float = Field(default=0.05, ge=0, le=1, description="block when losses exceed wins by more than this")
    max_tokens: int = Field(default=128, ge=1, le=4096)

    @field_validator("rubric")
    @classmethod
    def _known_rubric(cls, value: str) -> str:
        if value != PAIRWISE and rubrics.get(value) is None:
            raise ValueError(f"rubric must be {PAIRWISE} or one of {', '.join(sorted(rubrics.RUBRICS))}")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "GateIn":
        if (self.eval_set is None) == (self.replay is None):
            raise ValueError("give eval_set or replay, exactly one")
        return self


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
    gate: GateIn | None = Field(default=None, description="the offline gate before the canary; none: no gate")
    enabled: bool = True

    @field_validator("experiment")
    @classmethod
    def _valid_experiment_policy(cls, value: dict[str, Any]) -> dict[str, Any]:
        ExperimentPolicy.from_dict(value)  # refused here, not at the canary a training job later
        return value


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
    served_model: str | None
    registered_version: str | None
    experiment_id: str | None
    gate_job_id: str | None = Field(description="the job whose adapter the last offline gate judged")
    gate_comparison_id: str | None = Field(description="its comparison (/v1/evaluations/comparisons/{id})")
    gate_verdict: str | None = Field(description="pass | block | failed; null while it runs")
    gate_run_id: str | None = Field(description="the MLflow run the gate was logged to")
    gate_reason: str | None
    status: str | None
    updated_at: datetime


class RetrainingList(BaseModel):
    data: list[RetrainingPublic]
