from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from llmops_gateway.money import Amount, PricePerMTok


class PriceBase(BaseModel):
    """A variant's price per million tokens, in the gateway's currency."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: PricePerMTok
    output_per_mtok: PricePerMTok
    cached_input_per_mtok: PricePerMTok | None = Field(
        default=None, description="prompt tokens the upstream reports as cached; null: priced as input"
    )


class PriceCreate(PriceBase):
    pass


class PricePublic(PriceBase):
    id: int = Field(description="the price version; spend records name the version they were charged at")
    variant: str
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
