"""Choosing a variant: weighted rendezvous hashing for sticky users, weighted random otherwise.

Rendezvous (highest-random-weight) hashing gives each variant exactly its share of users, and when
weights change or a variant is added, only the users who must move do: the others keep their variant.
"""

import hashlib
import math
import random

from llmops_gateway.routing.schemas import RouteSpec, Variant

_TWO_64 = float(2**64)


def _unit_hash(*parts: str) -> float:
    """A uniform number in (0, 1) from the parts."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / _TWO_64


def choose(route_name: str, spec: RouteSpec, *, user: str | None) -> Variant:
    variants = spec.active_variants
    if len(variants) == 1:
        return variants[0]
    if not spec.sticky or user is None:
        return random.choices(variants, weights=[v.weight for v in variants])[0]
    # Score -ln(u)/w is exponentially distributed with rate w; the smallest wins with probability w/sum(w).
    return min(variants, key=lambda v: -math.log(_unit_hash(route_name, v.name, user)) / v.weight)


def candidates(route_name: str, spec: RouteSpec, *, user: str | None) -> list[Variant]:
    """The chosen variant first, then the route's fallbacks in order, without repeats."""
    chosen = choose(route_name, spec, user=user)
    if not spec.fallbacks:
        return [chosen]
    ordered, seen = [chosen], {chosen.name}
    for fallback in spec.fallback_variants:
        if fallback.name not in seen:
            ordered.append(fallback)
            seen.add(fallback.name)
    return ordered
