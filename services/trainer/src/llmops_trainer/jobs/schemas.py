"""The job API's wire format."""

import re
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from llmops_common.openapi import given

# MLflow accepts more, but a registered model is served as ``<name>@<alias>``: keep names URL- and path-safe.
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
ALIAS = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
RESERVED_ALIAS = r"^(?:[lL][aA][tT][eE][sS][tT]|[vV][0-9]+)$"  # MLflow's: "latest" and version-like aliases (v1, v2)
MODULE = r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeedbackSource(Strict):
    """The feedback service's SFT export: thumbs-up answers and corrections of the matching requests."""

    route: str | None = Field(default=None, max_length=128)
    variant: str | None = Field(default=None, max_length=128)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None


class DatasetSource(Strict):
    """Exactly one of: ``feedback`` (an export query) or ``jsonl`` (the JSONL text itself, chat format).
    A file can also be sent as multipart to ``POST /jobs/upload``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [given(["feedback"], absent=["jsonl"]), given(["jsonl"], absent=["feedback"])]},
    )

    feedback: FeedbackSource | None = None
    jsonl: str | None = Field(default=None, description="chat-format JSONL, one example per line")

    @model_validator(mode="after")
    def _one(self):
        if (self.feedback is None) == (self.jsonl is None):
            raise ValueError("give exactly one dataset source: 'feedback' or 'jsonl'")
        return self


class LoraSpec(Strict):
    r: int = Field(default=8, ge=1, le=256)
    alpha: int | None = Field(default=None, ge=1, le=1024, description="default: 2 × r")
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1, max_length=32)

    @field_validator("target_modules")
    @classmethod
    def _names(cls, modules: list[str]) -> list[str]:
        for name in modules:
            if not re.match(MODULE, name):
                raise ValueError(f"{name!r} is not a module name")
        return modules

    @property
    def effective_alpha(self) -> int:
        return self.alpha or 2 * self.r


class TrainingSpec(Strict):
    """Give ``epochs`` or ``max_steps`` (neither: one epoch)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "not": {
                "required": ["epochs", "max_steps"],
                "properties": {"epochs": {"type": "number"}, "max_steps": {"type": "number"}},
            }
        },
    )

    epochs: float | None = Field(default=None, gt=0, le=100)
    max_steps: int | None = Field(default=None, ge=1, le=1_000_000)
    learning_rate: float = Field(default=2e-4, gt=0, le=1)
    batch_size: int = Field(default=4, ge=1, le=512)
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=512)
    max_seq_length: int = Field(default=512, ge=16, le=32_768)
    warmup_steps: int = Field(default=0, ge=0)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    eval_fraction: float = Field(default=0.1, ge=0, le=0.5)
    eval_steps: int | None = Field(default=None, ge=1, description="evaluate every N steps (default: at the end)")
    quantization: Literal["none", "4bit"] = Field(default="none", description="4bit: QLoRA, CUDA workers only")

    @model_validator(mode="after")
    def _duration(self):
        if self.epochs is not None and self.max_steps is not None:
            raise ValueError("give epochs or max_steps, not both")
        if self.epochs is None and self.max_steps is None:
            self.epochs = 1.0
        return self


class RegistryTarget(Strict):
    model_name: str = Field(pattern=MODEL_NAME, description="the registered model; served as <model_name>@<alias>")
    alias: str | None = Field(
        default="challenger",
        pattern=ALIAS,
        description="null: register without an alias",
        json_schema_extra={"not": {"type": "string", "pattern": RESERVED_ALIAS}},
    )

    @field_validator("alias")
    @classmethod
    def _not_reserved(cls, alias: str | None) -> str | None:
        if alias is not None and re.match(RESERVED_ALIAS, alias):
            raise ValueError(f"{alias!r} is reserved by MLflow")
        return alias


class JobCreate(Strict):
    base_model: str | None = Field(default=None, max_length=256, description="default: the bundled model")
    dataset: DatasetSource
    lora: LoraSpec = Field(default_factory=LoraSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    registry: RegistryTarget


class JobSpec(Strict):
    """``POST /jobs/upload``'s ``spec`` field: a job without its dataset (the file is the dataset). Resolved, it is
    also what a worker receives in the job's message (``model_dump(mode="json")``) and validates back."""

    base_model: str | None = Field(default=None, max_length=256)
    lora: LoraSpec = Field(default_factory=LoraSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    registry: RegistryTarget

    def resolved(self, *, base_model: str) -> "JobSpec":
        """The job as it runs: the base model named, LoRA alpha filled in (default 2 × r)."""
        lora = self.lora.model_copy(update={"alpha": self.lora.effective_alpha})
        return self.model_copy(update={"base_model": base_model, "lora": lora})


class Progress(BaseModel):
    step: int
    total_steps: int | None
    epoch: float | None
    loss: float | None
    eval_loss: float | None
    eta_s: float | None


class JobPublic(BaseModel):
    object: Literal["training.job"] = "training.job"
    id: str
    state: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    base_model: str
    model_name: str
    alias: str | None
    served_model: str | None  # <model_name>@<alias> once registered with an alias: what inference serves
    hyperparameters: dict
    dataset: dict
    progress: Progress
    attempt: int
    cancel_requested: bool
    mlflow_experiment_id: str | None
    mlflow_run_id: str | None
    registered_version: str | None
    error: str | None


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobPublic]
