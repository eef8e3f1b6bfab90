"""Whether a batch can ever fit the limits and budgets its lines are counted against, checked whole at submission.

A line refused for quota waits and runs later (``worker.lines``), so a batch larger than a whole day's (or month's)
allowance would run until it stalls halfway and then wait until it expires. Such a batch is refused with 400
instead, naming what it exceeds and by how much: the key's daily token limit (``batch_over_daily_budget``), a
route's daily token limit per key (``batch_over_route_limit``), the key's or its team's daily or monthly budget in
currency (``batch_over_budget``). Only the limits and budgets that are set apply; what was already used today is
not counted (waiting helps with that).

Each line counts what the online quota stage reserves for it (``proxy.quota``): its prompt estimate and max_tokens
(lowered to the key's and route's cap, as ``proxy.caps`` lowers it), priced at the dearest variant its route may
reach (``PriceTable.worst_case``). Only lines the gateway will run count: a line for the batch's endpoint naming a
model the key may use. A line naming an unknown model (or one the key may not use) fails as that line when it runs,
and costs nothing. Context a RAG line retrieves is not known before it runs and is not counted.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from llmops_common.errors import APIError
from llmops_gateway.batches import input as batch_input
from llmops_gateway.batches.input import InputLine
from llmops_gateway.keys.auth import AuthenticatedKey
from llmops_gateway.money import format_amount
from llmops_gateway.proxy import caps
from llmops_gateway.routing.schemas import RouteSpec
from llmops_gateway.spend.prices import PriceTable

# How the endpoint's pipeline finds the route of a model (None: it answers 404 for it).
Resolve = Callable[[str], Awaitable[RouteSpec | None]]


@dataclass(slots=True)
class RouteDemand:
    """The most a batch's lines for one route may use."""

    spec: RouteSpec
    cap: int | None  # the key's and route's max_tokens cap
    prompt: int = 0
    completion: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt + self.completion


async def demand(
    lines: list[InputLine], *, key: AuthenticatedKey, endpoint: str, resolve: Resolve, default_max_tokens: int
) -> dict[str, RouteDemand]:
    """The batch's worst case by route, of the lines that will run."""
    by_route: dict[str, RouteDemand] = {}
    not_run: set[str] = set()
    for line in lines:
        if line.error is not None or line.url != endpoint:
            continue  # an error line when it runs
        route = line.body["model"]
        if route in not_run:
            continue
        entry = by_route.get(route)
        if entry is None:
            spec = await resolve(route) if key.may_use(route) else None
            if spec is None:
                not_run.add(route)
                continue
            entry = by_route[route] = RouteDemand(spec, caps.cap_for(key, spec))
        prompt, completion = batch_input.estimate(line, default_max_tokens=default_max_tokens, cap=entry.cap)
        entry.prompt += prompt
        entry.completion += completion
    return by_route


async def check(
    lines: list[InputLine],
    *,
    key: AuthenticatedKey,
    endpoint: str,
    resolve: Resolve,
    prices: PriceTable,
    default_max_tokens: int,
    currency: str,
) -> int:
    """The batch's token estimate; raises a 400 ``APIError`` for the first limit or budget it can never fit."""
    routes = await demand(lines, key=key, endpoint=endpoint, resolve=resolve, default_max_tokens=default_max_tokens)
    total = sum(d.tokens for d in routes.values())
    if (tpd := key.limits.tpd) is not None and total > tpd:
        raise _refusal(
            f"the batch needs about {total} tokens (prompts + max_tokens), over this key's daily budget of {tpd} "
            f"tokens by {total - tpd}",
            "batch_over_daily_budget",
        )
    for name, d in sorted(routes.items()):
        if (tpd := d.spec.limits.tpd) is not None and d.tokens > tpd:
            raise _refusal(
                f"the batch's lines for route {name!r} need about {d.tokens} tokens (prompts + max_tokens), over the "
                f"route's daily limit of {tpd} tokens per key by {d.tokens - tpd}",
                "batch_over_route_limit",
            )
    if key.budget.empty and key.team_budget.empty:
        return total
    await prices.refresh()  # as the online quota stage does before it prices a request
    cost = 0
    for d in routes.values():
        input_price, output_price = prices.worst_case(d.spec)
        cost += d.prompt * input_price + d.completion * output_price
    for owner, budget in (("this key's", key.budget), (f"team {key.team!r}'s", key.team_budget)):
        for period, limit in (("daily", budget.daily), ("monthly", budget.monthly)):
            if limit is not None and cost > limit:
                raise _refusal(
                    f"the batch may cost up to {format_amount(cost)} {currency} (prompts + max_tokens at its routes' "
                    f"dearest prices), over {owner} {period} budget of {format_amount(limit)} {currency} by "
                    f"{format_amount(cost - limit)} {currency}",
                    "batch_over_budget",
                )
    return total


def _refusal(message: str, code: str) -> APIError:
    # Waiting never helps a batch larger than a whole period's allowance: refused now, not failed halfway.
    return APIError(400, f"{message}; split it or lower max_tokens", code=code, param="input_file_id")
