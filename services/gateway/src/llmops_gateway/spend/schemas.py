from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmops_common.openapi import given
from llmops_gateway.money import (
    MAX_PRICE_PER_MTOK,
    Amount,
    GpuHourCost,
    PricePerMTok,
    TokensPerSecond,
    per_mtok_from_gpu_hour,
)

_CACHED = "prompt tokens the upstream reports as cached; null: priced as input"


class GpuHourDerivation(BaseModel):
    """How a self-hosted variant's price was derived: what an hour of its GPU costs and the tokens per second
    (prompt and completion alike) it serves, as the operator measured them."""

    model_config = ConfigDict(extra="forbid")

    gpu_hour_cost: GpuHourCost
    tokens_per_s: TokensPerSecond


class PriceCreate(BaseModel):
    """A variant's price per million tokens, in the gateway's currency: set per token (``input_per_mtok`` and
    ``output_per_mtok``), or for a self-hosted variant derived from ``gpu_hour_cost`` and ``tokens_per_s`` (both
    input and output then cost ``gpu_hour_cost / (tokens_per_s * 3600)`` per token, rounded up to 1/1000 per
    million tokens)."""

    # The two ways, in the schema too (the model validator below checks them). Not in it: the cap on what
    # gpu_hour_cost / tokens_per_s derives, a ratio of two fields that JSON Schema cannot bound.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                given(["input_per_mtok", "output_per_mtok"], absent=["gpu_hour_cost", "tokens_per_s"]),
                given(["gpu_hour_cost", "tokens_per_s"], absent=["input_per_mtok", "output_per_mtok"]),
            ]
        },
    )

    input_per_mtok: PricePerMTok | None = None
    output_per_mtok: PricePerMTok | None = None
    cached_input_per_mtok: PricePerMTok | None = Field(default=None, description=_CACHED)
    gpu_hour_cost: GpuHourCost | None = Field(default=None, description="self-hosted: an hour of the GPU(s)")
    tokens_per_s: TokensPerSecond | None = Field(default=None, description="self-hosted: the throughput served")

    @model_validator(mode="after")
    def _one_way(self) -> "PriceCreate":
        per_token = self.input_per_mtok is not None or self.output_per_mtok is not None
        self_hosted = self.gpu_hour_cost is not None or self.tokens_per_s is not None
        if self_hosted:
            if per_token or self.gpu_hour_cost is None or self.tokens_per_s is None:
                raise ValueError("give gpu_hour_cost with tokens_per_s, or input_per_mtok and output_per_mtok")
            derived = per_mtok_from_gpu_hour(self.gpu_hour_cost, self.tokens_per_s)
            if derived > MAX_PRICE_PER_MTOK:
                raise ValueError(
                    f"gpu_hour_cost / tokens_per_s gives {derived} per million tokens, over {MAX_PRICE_PER_MTOK}"
                )
            self.input_per_mtok = self.output_per_mtok = derived
        elif self.input_per_mtok is None or self.output_per_mtok is None:
            raise ValueError("give input_per_mtok and output_per_mtok, or gpu_hour_cost and tokens_per_s")
        return self

    @property
    def derivation(self) -> GpuHourDerivation | None:
        if self.gpu_hour_cost is None or self.tokens_per_s is None:
            return None
        return GpuHourDerivation(gpu_hour_cost=self.gpu_hour_cost, tokens_per_s=self.tokens_per_s)


class PricePublic(BaseModel):
    id: int = Field(description="the price version; spend records name the version they were charged at")
    variant: str
    input_per_mtok: Amount
    output_per_mtok: Amount
    cached_input_per_mtok: Amount | None = Field(default=None, description=_CACHED)
    derived_from: GpuHourDerivation | None = Field(
        default=None, description="a self-hosted price's GPU-hour cost and throughput; null: set per token"
    )
    created_at: datetime


class PriceList(BaseModel):
    data: list[PricePublic]


class SpendBy(StrEnum):
    route = "route"
    variant = "variant"
    key = "key"
    team = "team"
    prompt_version = "prompt_version"  # "<name>/<version>" of a registered prompt, a built-in template's name


class SpendGroup(BaseModel):
    group: str
    requests: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    cost: Amount


class SpendReport(BaseModel):
    currency: str
    since: datetime = Field(description="the start of the first hour counted (spend is summed per hour)")
    by: SpendBy | None
    total: SpendGroup
    groups: list[SpendGroup]
