"""Choosing a route's variant: routing strategies behind one interface, then the route's fallbacks in order.

A strategy decides which variant serves a request; the fallback order is the same for every strategy. Later
strategies (least load, prefix affinity across inference replicas) implement ``RoutingStrategy`` and are added
to ``Strategy`` and ``STRATEGIES``; the proxy only ever calls ``candidates``.
"""

import hashlib
import math
import random
from abc import ABC, abstractmethod
from enum import StrEnum

from llmops_gateway.routing.schemas import RouteSpec, Variant

_TWO_64 = float(2**64)


class RoutingStrategy(ABC):
    @abstractmethod
    def choose(self, route: str, variants: list[Variant], *, user: str | None) -> Variant:
        """One of ``variants`` (at least two, each with a positive weight) for this request."""


class WeightedSplit(RoutingStrategy):
    """Each request independently, in proportion to the weights."""

    def choose(self, route: str, variants: list[Variant], *, user: str | None) -> Variant:
        return random.choices(variants, weights=[v.weight for v in variants])[0]


class StickySplit(RoutingStrategy):
    """The same user always gets the same variant, by weighted rendezvous (highest-random-weight) hashing: each
    variant gets exactly its share of users, and when weights change or a variant is added only the users who
    must move do. Requests without a user are split at random."""

    def choose(self, route: str, variants: list[Variant], *, user: str | None) -> Variant:
        if user is None:
            return WeightedSplit().choose(route, variants, user=None)
        # Score -ln(u)/w is exponentially distributed with rate w; the smallest wins with probability w/sum(w).
        return min(variants, key=lambda v: -math.log(_unit_hash(route, v.name, user)) / v.weight)


def assignment_unit(user: str | None, key_id: str) -> str:
    """Whom sticky routing keeps on one variant: the request's ``user``, else its key."""
    return user or key_id


def unit_id(unit: str) -> str:
    """The assignment unit as the request log stores it: pseudonymous (a client's ``user`` may be an e-mail
    address), stable across replicas and restarts so experiments can count distinct users."""
    return hashlib.blake2b(unit.encode(), digest_size=8, person=b"llmops.user").hexdigest()


def _unit_hash(*parts: str) -> float:
    """A uniform number in (0, 1) from the parts."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / _TWO_64


class Strategy(StrEnum):
    weighted = "weighted"
    sticky = "sticky"


STRATEGIES: dict[Strategy, RoutingStrategy] = {Strategy.weighted: WeightedSplit(), Strategy.sticky: StickySplit()}


def strategy_for(spec: RouteSpec) -> RoutingStrategy:
    return STRATEGIES[Strategy.sticky if spec.sticky else Strategy.weighted]


def choose(route: str, spec: RouteSpec, *, user: str | None) -> Variant:
    variants = spec.active_variants
    if len(variants) == 1:
        return variants[0]
    return strategy_for(spec).choose(route, variants, user=user)


def candidates(route: str, spec: RouteSpec, *, user: str | None) -> list[Variant]:
    """The chosen variant first, then the route's fallbacks in order, without repeats."""
    chosen = choose(route, spec, user=user)
    if not spec.fallbacks:
        return [chosen]
    ordered, seen = [chosen], {chosen.name}
    for fallback in spec.fallback_variants:
        if fallback.name not in seen:
            ordered.append(fallback)
            seen.add(fallback.name)
    return ordered
