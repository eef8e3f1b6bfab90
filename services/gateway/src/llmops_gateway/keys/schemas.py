from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmops_gateway.limits import Limits
from llmops_gateway.money import Budget
from llmops_gateway.rag.schemas import MAX_ALLOWED_COLLECTIONS, CollectionName
from llmops_gateway.teams.schemas import TEAM_NAME_PATTERN

TIER_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,31}$"
MAX_EXPIRES_IN_S = 100 * 365 * 86_400
ROUTE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$"
COLLECTIONS_DESCRIPTION = (
    "RAG collections this key may retrieve from, within those each route allows (a grant narrows a route's policy, "
    "never widens it); null = any the route allows, [] = none"
)


class KeyBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    limits: Limits = Field(default_factory=Limits)
    allowed_routes: list[str] | None = Field(default=None, description="route names this key may use; null = all")
    allowed_collections: list[CollectionName] | None = Field(
        default=None, max_length=MAX_ALLOWED_COLLECTIONS, description=COLLECTIONS_DESCRIPTION
    )
    team: str | None = Field(default=None, pattern=TEAM_NAME_PATTERN, description="the team the key belongs to")
    tier: str | None = Field(default=None, pattern=TIER_PATTERN, description="a label routing rules match on")
    budget: Budget = Field(default_factory=Budget, description="the key's own spend limit, beside its team's")


class KeyCreate(KeyBase):
    # The rule below, in the schema too: a body the document allows is one the API accepts.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"not": {"required": ["expires_at", "expires_in_s"]}})

    expires_at: datetime | None = None
    # At most 100 years: beyond, the expiry overflows a datetime (it was a 500).
    expires_in_s: int | None = Field(default=None, ge=1, le=MAX_EXPIRES_IN_S)

    @model_validator(mode="after")
    def _one_expiry(self) -> "KeyCreate":
        if self.expires_at is not None and self.expires_in_s is not None:
            raise ValueError("give expires_at or expires_in_s, not both")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("expires_at needs a timezone")
        return self


class KeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    limits: Limits | None = None
    allowed_routes: list[str] | None = None
    allowed_collections: list[CollectionName] | None = Field(
        default=None, max_length=MAX_ALLOWED_COLLECTIONS, description=COLLECTIONS_DESCRIPTION
    )
    expires_at: datetime | None = None
    team: str | None = Field(default=None, pattern=TEAM_NAME_PATTERN, description="move the key; null: no team")
    tier: str | None = Field(default=None, pattern=TIER_PATTERN)
    budget: Budget | None = None


class KeyPublic(KeyBase):
    id: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="the secret; shown once, never again")


class KeyList(BaseModel):
    data: list[KeyPublic]
