from collections.abc import Mapping
from datetime import datetime
from functools import cached_property

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator, model_validator

from llmops_common.contracts.prompts import REF_PATTERN
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
    prompt: str | None = Field(
        default=None,
        pattern=REF_PATTERN,
        description="a registered prompt (`prompts:/<name>@<alias>` or `prompts:/<name>/<version>`) this variant "
        "serves with: with {{sources}}, in place of the route's RAG template on requests that retrieve; without, "
        "as the system prompt of requests that do not. Two variants of one model with two prompt versions are an "
        "experiment like any other",
    )

    @cached_property  # read on every request; a URL object renders itself slowly
    def base_url(self) -> str:
        return str(self.upstream).rstrip("/")


# Conditions a rule may set; one at least.
_BOUNDS = ("min_prompt_tokens", "max_prompt_tokens", "min_max_tokens", "max_max_tokens")


class RuleMatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    teams: list[str] | None = Field(default=None, min_length=1, max_length=64)
    tiers: list[str] | None = Field(default=None, min_length=1, max_length=16, description="the key's tier")
    headers: dict[str, str] | None = Field(default=None, min_length=1, max_length=8)
    min_prompt_tokens: int | None = Field(default=None, ge=0)
    max_prompt_tokens: int | None = Field(default=None, ge=0)
    min_max_tokens: int | None = Field(default=None, ge=0)
    max_max_tokens: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _some_condition(self) -> "RuleMatch":
        if (
            self.teams is None
            and self.tiers is None
            and self.headers is None
            and all(getattr(self, b) is None for b in _BOUNDS)
        ):
            raise ValueError("a rule needs at least one condition")
        return self

    def holds(
        self, *, team: str | None, tier: str | None, headers: Mapping[str, str], prompt_tokens: int, max_tokens: int
    ) -> bool:
        if self.teams is not None and team not in self.teams:
            return False
        if self.tiers is not None and tier not in self.tiers:
            return False
        if self.headers is not None and any(headers.get(k.lower()) != v for k, v in self.headers.items()):
            return False
        return (
            (self.min_prompt_tokens is None or prompt_tokens >= self.min_prompt_tokens)
            and (self.max_prompt_tokens is None or prompt_tokens <= self.max_prompt_tokens)
            and (self.min_max_tokens is None or max_tokens >= self.min_max_tokens)
            and (self.max_max_tokens is None or max_tokens <= self.max_max_tokens)
        )


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    match: RuleMatch
    variant: str = Field(description="a variant of this route (its weight may be 0: then only rules reach it)")


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
    rules: list[Rule] = Field(
        default_factory=list, max_length=32, description="cost-aware routing, before the split: the first match wins"
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
    def _rules_name_variants(self) -> "RouteSpec":
        names = {v.name for v in self.variants}
        for rule in self.rules:
            if rule.variant not in names:
                raise ValueError(f"rule {rule.name!r} names no variant of this route: {rule.variant!r}")
        if len({r.name for r in self.rules}) != len(self.rules):
            raise ValueError("rule names must be unique")
        return self

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
    def prompt_fields(self) -> list[tuple[str, str, bool | None]]:
        """Where the route names a registered prompt: ``(field, reference, used as a RAG template)``, so that an
        error about a reference names the field a client (or a platform file's line) gave it in."""
        fields = [(f"variants.{i}.prompt", v.prompt, None) for i, v in enumerate(self.variants) if v.prompt]
        fields += [
            (f"fallbacks.{i}.prompt", f.prompt, None)
            for i, f in enumerate(self.fallbacks)
            if isinstance(f, Variant) and f.prompt
        ]
        if self.rag is not None and self.rag.prompt_ref is not None:
            fields.append(("rag.template", self.rag.prompt_ref, True))
        return fields

    @cached_property
    def fallback_variants(self) -> list[Variant]:
        by_name = {v.name: v for v in self.variants}
        return [by_name[f] if isinstance(f, str) else f for f in self.fallbacks]


class RoutePublic(RouteSpec):
    name: str
    updated_at: datetime


class RouteList(BaseModel):
    data: list[RoutePublic]


class RevisionPublic(BaseModel):
    route: str
    revision: int
    action: str = Field(description="create, update, delete or revert")
    spec: dict | None = Field(description="the whole route after the change; null: deleted")
    changes: list[str] = Field(description="what changed, field by field: 'path: old -> new'")
    actor: str = Field(description="the admin identity (or 'platform', the admin token) that made the change")
    at: datetime


class RevisionList(BaseModel):
    data: list[RevisionPublic]


class RevertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    revision: int = Field(ge=1, le=2**31 - 1, description="the revision whose spec the route gets back")
