"""Quotas and budgets in Redis: every limit of a request checked and reserved in one atomic script call.

The check is the gateway's only Redis round trip on a request's path, and a busy key's requests mostly skip it:
a process leases quota ahead of use (``quotas.plan``). Reconciliations (real usage replacing the reservation) do
not need to be immediate: they are summed per counter and written together every ``reconcile_interval_s``,
one round trip for all. Redis is reached through redis-py (a script object reloads the script after a Redis
restart); the gateway's readiness probe shares the same client.
"""

import asyncio
import contextlib
import logging
import time
from importlib.resources import files

import redis.asyncio as redis
from redis.exceptions import RedisError

from llmops_gateway.limits import Limits
from llmops_gateway.money import NO_BUDGET, BudgetNanos
from llmops_gateway.quotas.plan import HeldReservation, Plan, Reservation

logger = logging.getLogger(__name__)


def _script(client: redis.Redis, name: str, *, prelude: str = ""):
    text = files(__package__).joinpath(name).read_text()
    if prelude:
        text = files(__package__).joinpath(prelude).read_text() + text
    return client.register_script(text)


class QuotaExceeded(Exception):
    def __init__(self, *, scope: str, kind: str, limit: int, retry_after_s: float, cost: int) -> None:
        super().__init__(f"{scope} {kind} limit {limit} reached")
        self.scope, self.kind, self.limit, self.retry_after_s, self.cost = scope, kind, limit, retry_after_s, cost


class QuotaStoreUnavailable(Exception):
    pass


class QuotaLimiter:
    def __init__(
        self, client: redis.Redis, *, prefix: str, lease_s: float = 0.1, reconcile_interval_s: float = 0.02
    ) -> None:
        self._reserve_script = _script(client, "reserve.lua", prelude="month.lua")
        self._reconcile_script = _script(client, "reconcile.lua")
        self._plans: dict[tuple, Plan] = {}
        self._lease_s = lease_s
        self._prefix = prefix
        self._reconcile_interval_s = reconcile_interval_s
        self._pending: dict[str, int] = {}  # token or budget counter -> summed correction not yet written
        self._flusher: asyncio.Task | None = None

    async def reserve(
        self,
        *,
        key_id: str,
        key_limits: Limits,
        route: str,
        route_limits: Limits,
        tokens: int,
        cost: int = 0,
        key_budget: BudgetNanos = NO_BUDGET,
        team: str | None = None,
        team_budget: BudgetNanos = NO_BUDGET,
    ) -> Reservation:
        """Count one request, ``tokens`` and ``cost`` (nano-units) against every limit and budget that is set, or
        raise ``QuotaExceeded``."""
        plan = self._plan(key_id, key_limits, route, route_limits, key_budget, team, team_budget)
        if not plan.limits:
            return Reservation(tokens=tokens)
        now = time.monotonic()
        plan.note(tokens, now)
        if reservation := plan.spend(tokens, now):
            return reservation
        refilling = plan.refill is not None
        if refilling:  # once: if the refill does not cover this request, it asks Redis itself
            await plan.refill.wait()
            now = time.monotonic()
            if reservation := plan.spend(tokens, now):
                return reservation
        leases = [0] * len(plan.limits) if refilling else plan.wanted_leases(now)
        with plan.refilling(leases):
            try:
                result = await self._reserve_script(args=plan.script_args(tokens, leases, cost))
            except (RedisError, OSError) as exc:
                raise QuotaStoreUnavailable(repr(exc)) from exc
        if result[0] == 0:
            index = result[1] - 1
            scope, kind, limit = plan.limits[index]
            needed = plan.costs(tokens, cost)[index]
            raise QuotaExceeded(scope=scope, kind=kind, limit=limit, retry_after_s=result[2] / 1000, cost=needed)
        windows, remaining, leased = result[3::4], result[4::4], result[6::4]
        # From the time before the call: a lease ends no later than its window does on Redis's clock.
        ends_at = [now + reset_ms / 1000 for reset_ms in result[5::4]]
        if any(leased):
            plan.granted(windows, remaining, ends_at, leased)
        return plan.reservation(tokens, windows, remaining, ends_at, now, cost)

    def _plan(
        self,
        key_id: str,
        key_limits: Limits,
        route: str,
        route_limits: Limits,
        key_budget: BudgetNanos,
        team: str | None,
        team_budget: BudgetNanos,
    ) -> Plan:
        """The limits to check and the script call, encoded once per key, route and limits (not per request)."""
        cache_key = (key_id, route, key_limits.rpm, key_limits.tpm, key_limits.tpd)
        cache_key += (route_limits.rpm, route_limits.tpm, route_limits.tpd, key_budget, team, team_budget)
        plan = self._plans.get(cache_key)
        if plan is None:
            if len(self._plans) > 10_000:  # keys and routes come and go: never grow without bound
                self._plans.clear()
            plan = self._plans[cache_key] = Plan(
                self._prefix, key_id, key_limits, route, route_limits, self._lease_s, key_budget, team, team_budget
            )
        return plan

    def reconcile(
        self, reservation: Reservation | HeldReservation, *, actual_tokens: int, actual_cost: int = 0
    ) -> None:
        """Replace the reserved token estimate and worst-case price by the real ones, in the next batched write."""
        pending, queued = self._pending, False
        if delta := actual_tokens - reservation.tokens:
            for counter in reservation.token_counters():
                pending[counter] = pending.get(counter, 0) + delta
                queued = True
        if delta := actual_cost - reservation.cost:
            for counter in reservation.cost_counters():
                pending[counter] = pending.get(counter, 0) + delta
                queued = True
        if queued and self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self._reconcile_interval_s)
        finally:
            self._flusher = None
            await self.flush()  # also when cancelled at shutdown: corrections are not dropped

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        counters = list(pending)
        try:
            await self._reconcile_script(keys=counters, args=[pending[c] for c in counters])
        except (RedisError, OSError) as exc:
            logger.warning("quota reconciliation failed", extra={"error": repr(exc), "counters": len(counters)})

    async def aclose(self) -> None:
        """Writes the corrections still pending (the app's lifespan calls it before closing Redis)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
