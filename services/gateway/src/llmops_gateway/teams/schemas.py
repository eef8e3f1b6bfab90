from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from llmops_gateway.money import Budget

TEAM_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class TeamBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=500)
    budget: Budget = Field(default_factory=Budget, description="the spend of all the team's keys together")


class TeamCreate(TeamBase):
    name: str = Field(pattern=TEAM_NAME_PATTERN)


class TeamUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=500)
    budget: Budget | None = None


class TeamPublic(TeamBase):
    name: str
    created_at: datetime
    keys: int = Field(description="keys that belong to the team (revoked ones included)")


class TeamList(BaseModel):
    data: list[TeamPublic]
