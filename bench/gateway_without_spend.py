"""The gateway with its spend accounting taken out: the baseline of the spend benchmark (bench/spend_bench.py).

    python bench/gateway_without_spend.py --port 8100 --workers 1

The app factory builds its price table and spend recorder by the names ``llmops_gateway.app.PriceTable`` and
``llmops_gateway.app.SpendRecorder``; this sets both to the no-ops below, then runs the gateway exactly as
``python -m llmops_gateway`` does. What each request no longer does:
- the price table's freshness check before the quota stage (``PriceTable.refresh``: a clock read per request,
  and the SQL query that reloads every price once per ``GATEWAY_ROUTE_CACHE_TTL_S``);
- the price lookup and the cost of the real usage at that price (``PriceTable.get``, ``UnitPrice.cost``):
  every request costs 0;
- the spend sum (``SpendRecorder.add``) and its flushes (one SQL upsert every ``GATEWAY_SPEND_FLUSH_INTERVAL_S``);
- the spend metric (``llmops_gateway_spend``): the accounting stage adds to it only for a cost above 0.
What stays is the product's code: authentication, routing, token limits and their reconciliation (a cost of 0
changes nothing there: cost counters exist only for currency budgets), the metrics, the request-log record (with
``cost_nanos`` 0), the admin API (a price set there is still stored; only the hot path no longer reads it). The
call sites stay too: an await of an empty coroutine and three calls of empty methods per request, about 0.2 µs on
the benchmark's machine (timeit; the real calls took 0.8 µs there, the spend metric's increment apart), against a
gateway CPU cost of about 200 µs per request.

Currency budgets cannot be measured here: their reservation is a worst-case price, and without prices it would
reserve 0. A worst case of the dearest variants is also what batch admission prices (batches/fit.py); with these
no-ops it sees every variant free. One worker only: uvicorn's worker processes would import the app afresh,
without the swap.
"""

import sys

import llmops_gateway.app
from llmops_gateway.__main__ import main


class NoCost:
    """A price that charges nothing, without computing it."""

    id = 0

    def cost(self, *, prompt_tokens: int, cached_tokens: int, completion_tokens: int) -> int:
        return 0


class NoPrices:
    """``PriceTable``'s interface with no prices behind it and nothing loaded: every variant free."""

    _NO_COST = NoCost()

    def __init__(self, sessions, *, ttl_s: float) -> None:
        pass

    async def refresh(self) -> None:
        pass

    def invalidate(self) -> None:
        pass

    def get(self, variant: str) -> NoCost:
        return self._NO_COST

    def worst_case(self, spec) -> tuple[int, int]:
        return 0, 0


class NoSpend:
    """``SpendRecorder``'s interface recording nothing: no sums in memory, no flush task, no SQL."""

    def __init__(self, sessions, *, interval_s: float, on_lost=None) -> None:
        pass

    def add(
        self,
        *,
        at: float,
        key_id: str,
        team: str | None,
        route: str,
        variant: str,
        prompt_version: str,
        price_id: int,
        prompt_tokens: int,
        cached_tokens: int,
        completion_tokens: int,
        cost_nanos: int,
    ) -> None:
        pass  # the same keywords as SpendRecorder.add: a change there fails the benchmark instead of hiding

    async def flush(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


if __name__ == "__main__":
    if "--workers" in sys.argv and sys.argv[sys.argv.index("--workers") + 1] != "1":
        raise SystemExit("gateway_without_spend runs one worker")
    llmops_gateway.app.PriceTable = NoPrices
    llmops_gateway.app.SpendRecorder = NoSpend
    main()
