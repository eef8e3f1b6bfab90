"""Prices: versioned in SQL (a new price is a new row), read on the hot path from a per-process table."""

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmops_common.errors import APIError
from llmops_common.sql import utcnow
from llmops_gateway.money import per_mtok, per_token_nanos
from llmops_gateway.reloads import take_turn
from llmops_gateway.routing.schemas import RouteSpec
from llmops_gateway.spend.models import Price
from llmops_gateway.spend.schemas import GpuHourDerivation, PriceCreate, PricePublic

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UnitPrice:
    """A price version as the hot path uses it: nano-units per token."""

    id: int
    input: int
    output: int
    cached_input: int

    def cost(self, *, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> int:
        cached = min(cached_tokens, prompt_tokens)
        return (prompt_tokens - cached) * self.input + cached * self.cached_input + completion_tokens * self.output


FREE = UnitPrice(0, 0, 0, 0)  # a variant without a price


def to_public(price: Price) -> PricePublic:
    return PricePublic(
        id=price.id,
        variant=price.variant,
        input_per_mtok=per_mtok(price.input_nanos),
        output_per_mtok=per_mtok(price.output_nanos),
        cached_input_per_mtok=per_mtok(price.cached_input_nanos) if price.cached_input_nanos is not None else None,
        derived_from=GpuHourDerivation.model_validate(price.derived_from) if price.derived_from else None,
        created_at=price.created_at,
    )


def _unit(price: Price) -> UnitPrice:
    cached = price.cached_input_nanos if price.cached_input_nanos is not None else price.input_nanos
    return UnitPrice(price.id, price.input_nanos, price.output_nanos, cached)


async def create(session: AsyncSession, *, variant: str, data: PriceCreate) -> Price:
    """A new version of the variant's price; the versions before it stay, for the spend charged at them. A price
    derived from a GPU-hour cost keeps the figures it came from, so the version a spend row names shows them."""
    derivation = data.derivation
    price = Price(
        variant=variant,
        input_nanos=per_token_nanos(data.input_per_mtok),
        output_nanos=per_token_nanos(data.output_per_mtok),
        cached_input_nanos=per_token_nanos(data.cached_input_per_mtok)
        if data.cached_input_per_mtok is not None
        else None,
        derived_from=derivation.model_dump(mode="json") if derivation is not None else None,
        created_at=utcnow(),
    )
    session.add(price)
    await session.commit()
    return price


async def current(session: AsyncSession) -> list[Price]:
    """Each variant's newest price."""
    newest = select(func.max(Price.id)).group_by(Price.variant)
    return list((await session.scalars(select(Price).where(Price.id.in_(newest)).order_by(Price.variant))).all())


async def history(session: AsyncSession, *, variant: str) -> list[Price]:
    rows = (await session.scalars(select(Price).where(Price.variant == variant).order_by(Price.id.desc()))).all()
    if not rows:
        raise APIError(404, f"variant {variant!r} has no price", code="price_not_found")
    return list(rows)


class PriceTable:
    """The current prices as the hot path sees them: one query loads all, at most once per ``ttl_s``; a price set
    through any replica applies everywhere within that time. If SQL is unreachable the last table keeps serving."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl_s: float) -> None:
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._prices: dict[str, UnitPrice] = {}
        self._loaded_at = float("-inf")
        self._loaded = False  # prices were read once: until then every request waits for them
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        if time.monotonic() - self._loaded_at <= self._ttl_s:
            return
        if not await take_turn(self._lock, may_serve_stale=self._loaded):
            return  # another request's reload is held up: the prices there are charge meanwhile
        try:
            if time.monotonic() - self._loaded_at <= self._ttl_s:
                return
            try:
                async with self._sessions() as session:
                    rows = await current(session)
                self._prices, self._loaded = {row.variant: _unit(row) for row in rows}, True
            except (SQLAlchemyError, OSError) as exc:
                logger.warning("price store unreachable; charging the last prices", extra={"error": repr(exc)})
            self._loaded_at = time.monotonic()
        finally:
            self._lock.release()

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")

    def get(self, variant: str) -> UnitPrice:
        return self._prices.get(variant, FREE)

    def worst_case(self, spec: RouteSpec) -> tuple[int, int]:
        """The dearest input and output price of any variant a request to the route may reach (fallbacks too):
        what a reservation charges before the variant is chosen."""
        prices = self._prices
        worst_in = worst_out = 0
        for variant in (*spec.variants, *spec.fallback_variants):  # a few dict lookups: cheaper than a cache
            price = prices.get(variant.name, FREE)
            worst_in, worst_out = max(worst_in, price.input), max(worst_out, price.output)
        return worst_in, worst_out
