"""Money as integers: amounts in nano-units of the configured currency (1e-9), prices in nano-units per token.

Redis counts budgets with INCRBY and its Lua scripts read numbers as doubles, exact up to 2**53 (about 9e15):
nano-units keep every amount up to 9 million currency units exact, which the upper bounds below respect.
A price per million tokens with at most 3 decimals is a whole number of nano-units per token, so a request's
cost is exact integer arithmetic everywhere (gateway, Redis, SQL), and never a float that drifts.
"""

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

NANOS = 10**9
_NANOS_PER_TOKEN_PER_MTOK = 1000  # a price per million tokens, in nano-units per token


def _plain(amount: Decimal) -> str:
    """``250``, ``0.0000001``: never ``2.5E+2`` or ``1E-7`` (Decimal's own str), never trailing zeros."""
    return format(amount.normalize(), "f")


# An amount of money in JSON: a decimal string, exact (a float would not be).
Amount = Annotated[Decimal, PlainSerializer(_plain, return_type=str, when_used="json")]


def decimal_pattern(*, maximum: int, places: int, positive: bool) -> str:
    """The decimal strings from 0 (or just above, when ``positive``) to ``maximum`` (a power of 10) with at most
    ``places`` decimals: what the amount types below take as text, so the document states their rule exactly."""
    digits = len(str(maximum)) - 1
    fraction = rf"(?:\.[0-9]{{1,{places}}})?"  # [0-9], not \d: Python's \d takes other scripts' digits too
    if positive:  # a zero whole part needs a non-zero digit among its first ``places`` decimals
        tiny = "|".join("0" * i + "[1-9]" + f"[0-9]{{0,{places - 1 - i}}}" for i in range(places))
        below = rf"[1-9][0-9]{{0,{digits - 1}}}{fraction}|0\.(?:{tiny})"
    else:
        below = rf"(?:0|[1-9][0-9]{{0,{digits - 1}}}){fraction}"
    return rf"^(?:{below}|{maximum}(?:\.0{{1,{places}}})?)$"


def _amount(*, maximum: int, places: int, positive: bool, what: str) -> object:
    """An amount type: text matching ``decimal_pattern`` or a whole number within the bounds, documented as such in
    both directions (a stored amount reads back as text the same rule takes). A JSON number with a fraction is read
    too, as the shortest decimal it prints as; the document leaves it out (text is the exact form)."""
    pattern = decimal_pattern(maximum=maximum, places=places, positive=positive)
    matches = re.compile(pattern).fullmatch

    def text_matches(value: object) -> object:
        if isinstance(value, str) and not matches(value):
            raise ValueError(f"{what}: a decimal such as 12.5, at most {places} decimals, up to {maximum}")
        return value

    whole = {"type": "integer", "maximum": maximum} | ({"minimum": 1} if positive else {"minimum": 0})
    schema = {"anyOf": [{"type": "string", "pattern": pattern}, whole], "description": what}
    bounds = {"gt": 0} if positive else {"ge": 0}
    return Annotated[
        Amount,
        Field(le=maximum, decimal_places=places, allow_inf_nan=False, **bounds),
        BeforeValidator(text_matches),
        WithJsonSchema(schema),
    ]


# A budget: positive, at most a million currency units, to the micro-unit.
BudgetAmount = _amount(maximum=1_000_000, places=6, positive=True, what="a budget in the currency")
# A price per million tokens: at most 10,000, to 1/1000 (whole nano-units per token).
MAX_PRICE_PER_MTOK = 10_000
PricePerMTok = _amount(maximum=MAX_PRICE_PER_MTOK, places=3, positive=False, what="a price per million tokens")
# A self-hosted variant's cost: an hour of its GPU(s), positive, at most 10,000 (a whole 8-GPU node costs ~100).
GpuHourCost = _amount(maximum=10_000, places=6, positive=True, what="the cost of an hour of the GPU(s)")
# ... and the tokens per second it serves: positive, at most a million (far beyond any one deployment).
TokensPerSecond = _amount(maximum=1_000_000, places=3, positive=True, what="tokens per second served")


def to_nanos(amount: Decimal) -> int:
    return int(amount * NANOS)


def from_nanos(nanos: int) -> Decimal:
    return Decimal(nanos) / NANOS


def format_amount(nanos: int) -> str:
    return _plain(from_nanos(nanos))


def per_token_nanos(per_mtok: Decimal) -> int:
    return int(per_mtok * _NANOS_PER_TOKEN_PER_MTOK)


def per_mtok(nanos_per_token: int) -> Decimal:
    return Decimal(nanos_per_token) / _NANOS_PER_TOKEN_PER_MTOK


def per_mtok_from_gpu_hour(gpu_hour_cost: Decimal, tokens_per_s: Decimal) -> Decimal:
    """Every token costs the same share of the GPU's hour; rounded up to the 1/1000 a price is kept to (never 0)."""
    return (gpu_hour_cost * 1_000_000 / (tokens_per_s * 3600)).quantize(Decimal("0.001"), rounding=ROUND_CEILING)


class Budget(BaseModel):
    """A budget in currency per UTC day and per calendar month (UTC); unset: no budget of that period."""

    model_config = ConfigDict(extra="forbid")

    daily: BudgetAmount | None = None
    monthly: BudgetAmount | None = None

    @property
    def empty(self) -> bool:
        return self.daily is None and self.monthly is None

    def nanos(self) -> "BudgetNanos":
        return BudgetNanos(
            daily=to_nanos(self.daily) if self.daily is not None else None,
            monthly=to_nanos(self.monthly) if self.monthly is not None else None,
        )


@dataclass(frozen=True, slots=True)
class BudgetNanos:
    """A budget as the hot path uses it (hashable: part of a quota plan's cache key)."""

    daily: int | None = None
    monthly: int | None = None

    @property
    def empty(self) -> bool:
        return self.daily is None and self.monthly is None

    def public(self) -> Budget:
        return Budget(
            daily=from_nanos(self.daily) if self.daily is not None else None,
            monthly=from_nanos(self.monthly) if self.monthly is not None else None,
        )


NO_BUDGET = BudgetNanos()
