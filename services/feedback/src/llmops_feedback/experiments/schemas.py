"""Experiments' API bodies: what an admin sends, and what the API answers."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$"  # the gateway's route and variant names


class ExperimentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    route: str = Field(pattern=NAME_PATTERN, description="the gateway route the experiment splits")
    champion: str = Field(pattern=NAME_PATTERN, description="the route's variant serving today")
    challenger: str = Field(pattern=NAME_PATTERN, description="the route's variant under test")
    policy: dict[str, Any] = Field(
        default_factory=dict,
        description="decision policy (primary_metric: thumbs_up | judge_score, judge_rubric (required with "
        "judge_score or min_judge_score), alpha, min_ratings_per_arm, min_detectable_effect, max_duration_s, steps, "
        "min_step_duration_s, guardrails); unset fields take the defaults",
    )


class ArmReadout(BaseModel):
    arm: str  # champion | challenger
    variant: str
    model: str | None
    version: str | None
    exposures: int
    other_versions: int
    prompts: dict[str, int] = {}  # exposures by prompt ("name/version", a built-in template by name)
    ratings: int
    thumbs_up: int
    up_rate: float | None
    up_rate_low: float | None
    up_rate_high: float | None
    judge_scores: int = Field(description="scores of the policy's judge_rubric on the arm's requests (0 without one)")
    judge_score: float | None = Field(description="their mean, in [0, 1]")
    judge_score_low: float | None = Field(description="a fixed-horizon 95% interval of the mean, for display")
    judge_score_high: float | None
    errors: int
    error_rate: float | None
    ttft_p95_ms: float | None


class DecisionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    action: str
    reason: str
    evidence: dict[str, Any]
    actor: str
    share: float
    applied: bool
    apply_error: str | None
    created_at: datetime


class Readout(BaseModel):
    primary_metric: str = Field(description="what the experiment decides on: thumbs_up or judge_score")
    judge_rubric: str | None = Field(description="the rubric whose scores the judge metric and guardrail read")
    arms: list[ArmReadout]
    next: DecisionPublic | None = Field(description="what the controller would decide now (not recorded)")


class ExperimentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    route: str
    champion: str
    challenger: str
    champion_model: str | None = Field(description="a registry arm's served name, <model>@<alias>")
    challenger_model: str | None
    champion_version: str | None = Field(description="the registry version the arm is pinned to")
    challenger_version: str | None
    previous_champion_version: str | None = Field(description="after a promotion: the champion alias's old version")
    previous_champion: dict[str, Any] | None = Field(description="after a promotion: what the champion variant served")
    status: str
    steps: list[float]
    step_index: int
    share: float
    policy: dict[str, Any]
    created_by: str
    created_at: datetime
    step_started_at: datetime
    concluded_at: datetime | None


class ExperimentDetail(ExperimentPublic):
    readout: Readout | None
    decisions: list[DecisionPublic]


class ExperimentList(BaseModel):
    data: list[ExperimentPublic]
