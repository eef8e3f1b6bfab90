from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmops_gateway.teams.schemas import TEAM_NAME_PATTERN


class Role(StrEnum):
    admin = "admin"  # everything
    team_admin = "team-admin"  # its team's keys (limits, budgets), its team and its spend, read only
    viewer = "viewer"  # read only, everything


class IdentityBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    role: Role
    team: str | None = Field(default=None, pattern=TEAM_NAME_PATTERN, description="a team-admin's team")


class IdentityCreate(IdentityBase):
    @model_validator(mode="after")
    def _team_for_team_admins(self) -> "IdentityCreate":
        if (self.role is Role.team_admin) != (self.team is not None):
            raise ValueError("a team-admin needs a team, and only a team-admin has one")
        return self


class IdentityPublic(IdentityBase):
    id: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class IdentityCreated(IdentityPublic):
    token: str = Field(description="the admin token of this identity; shown once, never again")


class IdentityList(BaseModel):
    data: list[IdentityPublic]


class AuditPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    before: dict | None
    after: dict | None


class AuditList(BaseModel):
    data: list[AuditPublic]
