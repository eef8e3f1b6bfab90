from datetime import datetime
from functools import cached_property

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator, model_validator

from llmops_gateway.limits import Limits
from llmops_gateway.rag.schemas import RagRoute

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$"


class Variant(BaseModel):
    """One upstream a route can send traffic to: an OpenAI-compatible base URL and the model (or adapter) there."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(pattern=NAME_PATTERN)
    upstream: AnyHttpUrl = Field(description="OpenAI-compatible base URL, e.g. http://inference:8002/v1")
    model: str = Field(min_length=1, max_length=256, description="model or adapter name at the upstream")
    weight: float = Field(default=1.0, ge=0, description="share of traffic, relative to the other variants")
    api_key_env: str | None = Field(
        default=None, pattern=r"^[A-Z_][A-Z0-9_]*$", description="environment variable holding the upstream's API key"
    )

    @cached_property  # read on every request; a URL object renders itself slowly
    def base_url(self) -> str:
        return str(self.upstream).rstrip("/")


class RouteSpec(BaseModel):
    """What ``PUT /admin/routes/{name}`` accepts, stored as its JSON dump and read back through this same model
    (``RoutePublic`` adds only the name and time). So every constraint lives here once, and validators check, never
    rewrite: a rewritten value may break a constraint on the way back (it did: ``rag.allowed_collections``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    variants: list[Variant] = Field(min_length=1, max_length=32)
    sticky: bool = Field(default=True, description="the same user always gets the same variant (while weights stay)")
    fallbacks: list[str | Variant] = Field(
        default_factory=list,
        max_length=8,
        description="tried in order when the chosen variant fails: a variant name of this route, or a variant",
    )
    limits: Limits = Field(default_factory=Limits, description="limits per key on this route, on top of the key's own")
    rag: RagRoute | None = Field(
        default=None, description="retrieval defaults and policy (prompt template, retriever errors)"
    )

    @field_validator("variants")
    @classmethod
    def _unique_names(cls, variants: list[Variant]) -> list[Variant]:
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        if sum(v.weight for v in variants) <= 0:
            raise ValueError("at least one variant needs a positive weight")
        return variants

    @model_validator(mode="after")
    def _fallbacks_exist(self) -> "RouteSpec":
        names = {v.name for v in self.variants}
        for fallback in self.fallbacks:
            if isinstance(fallback, str) and fallback not in names:
                raise ValueError(f"fallback {fallback!r} names no variant of this route")
            if isinstance(fallback, Variant) and fallback.name in names:
                # It would share that variant's circuit and be skipped as a repeat: name it instead.
                raise ValueError(f"fallback variant {fallback.name!r} reuses a variant's name; refer to it by name")
        return self

    # Derived once per loaded route (the route table holds its specs until the next reload), not per request.

    @cached_property
    def active_variants(self) -> list[Variant]:
        """The variants with a share of traffic."""
        return [v for v in self.variants if v.weight > 0]

    @cached_property
    def fallback_variants(self) -> list[Variant]:
        by_name = {v.name: v for v in self.variants}
        return [by_name[f] if isinstance(f, str) else f for f in self.fallbacks]


class RoutePublic(RouteSpec):
    name: str
    updated_at: datetime


class RouteList(BaseModel):
    data: list[RoutePublic]
