from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmops_gateway.teams.schemas import TEAM_NAME_PATTERN


class Role(StrEnum):
    admin = "admin"  # everything
    team_admin = "team-admin"  # its team's keys (limits, budgets), its team and its spend, read only
    viewer = "viewer"  # read only, everything


IdentityName = Annotated[str, Field(min_length=1, max_length=200)]


class IdentityBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: IdentityName
    role: Role
    team: str | None = Field(default=None, pattern=TEAM_NAME_PATTERN, description="a team-admin's team")


# What POST /admin/identities takes: one model per kind of identity, told apart by role, so that the document
# states the rule the API keeps (a team-admin needs a team, and only a team-admin has one).
class TeamAdminCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: IdentityName
    role: Literal[Role.team_admin]
    team: str = Field(pattern=TEAM_NAME_PATTERN, description="the team it administers")


class PlatformIdentityCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: IdentityName
    role: Literal[Role.admin, Role.viewer]
    team: None = Field(default=None, description="only a team-admin has a team")


IdentityCreate = Annotated[TeamAdminCreate | PlatformIdentityCreate, Field(discriminator="role")]


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
