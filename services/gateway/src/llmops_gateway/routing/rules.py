"""Cost-aware routing rules: before the weighted split, the first rule that matches a request sends it to a
named variant (the small or quantised one); no rule matches, the split decides as before.

A rule matches when every condition it sets holds: the key's team is one of ``teams``, its tier one of ``tiers``; each ``headers`` entry
equals the request's header (names case-insensitive); the prompt estimate and the completion budget
(max_tokens, else the gateway's default reservation) lie within their bounds. The rule's variant goes first and
the route's fallbacks follow it, as after a split.
"""

from collections.abc import Mapping

from llmops_gateway.routing.schemas import RouteSpec, Rule, Variant


def first_match(
    rules: list[Rule],
    *,
    team: str | None,
    tier: str | None,
    headers: Mapping[str, str],
    prompt_tokens: int,
    max_tokens: int,
) -> Rule | None:
    for rule in rules:
        if rule.match.holds(team=team, tier=tier, headers=headers, prompt_tokens=prompt_tokens, max_tokens=max_tokens):
            return rule
    return None


def candidates(spec: RouteSpec, rule: Rule) -> list[Variant]:
    """The rule's variant first, then the route's fallbacks in order, without repeats."""
    chosen = next(v for v in spec.variants if v.name == rule.variant)
    ordered, seen = [chosen], {chosen.name}
    for fallback in spec.fallback_variants:
        if fallback.name not in seen:
            ordered.append(fallback)
            seen.add(fallback.name)
    return ordered
