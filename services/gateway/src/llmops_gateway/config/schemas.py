"""The platform's desired state as the gateway takes it (``POST /admin/config/apply``) and gives it (``GET``).

Routes are the gateway's own ``RouteSpec`` (defined once: whatever a route may hold, a config file may hold). Keys
are named, and only what an operator sets on a key is managed here: limits, allowed routes and RAG collections, tier
and budget. A key's secret never appears: keys are created with ``llmops keys create`` (which shows the secret once),
never by a file.
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from llmops_gateway.keys.schemas import COLLECTIONS_DESCRIPTION, TIER_PATTERN
from llmops_gateway.limits import Limits
from llmops_gateway.money import Budget
from llmops_gateway.rag.schemas import MAX_ALLOWED_COLLECTIONS, CollectionName
from llmops_gateway.routing.schemas import NAME_PATTERN, RouteSpec

RouteName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
KeyName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class KeyState(BaseModel):
    """The managed fields of a key; a field left out has no value (no limit, all routes, any collection its routes
    allow, no tier, no budget)."""

    model_config = ConfigDict(extra="forbid")

    limits: Limits = Field(default_factory=Limits)
    allowed_routes: list[str] | None = Field(default=None, description="route names this key may use; null = all")
    allowed_collections: list[CollectionName] | None = Field(
        default=None, max_length=MAX_ALLOWED_COLLECTIONS, description=COLLECTIONS_DESCRIPTION
    )
    tier: str | None = Field(default=None, pattern=TIER_PATTERN)
    budget: Budget = Field(default_factory=Budget)


class ConfigState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routes: dict[RouteName, RouteSpec] = Field(default_factory=dict, max_length=10_000)
    keys: dict[KeyName, KeyState] = Field(
        default_factory=dict, max_length=100_000, description="by key name: each must name one live key"
    )


class ConfigApply(ConfigState):
    prune: bool = Field(default=False, description="delete the routes the state leaves out (keys are never revoked)")
    dry_run: bool = Field(default=False, description="answer the plan, change nothing")


class Change(BaseModel):
    kind: Literal["route", "key"]
    name: str
    action: Literal["create", "update", "delete"]
    before: dict | None
    after: dict | None


class Plan(BaseModel):
    changes: list[Change] = Field(description="what differs from the state given (empty: the gateway matches it)")
    applied: bool = Field(description="true: the changes were made, all in one transaction")


class ConfigExport(ConfigState):
    unmanaged_keys: list[str] = Field(
        default_factory=list, description="live keys left out: their name is shared by several live keys"
    )
