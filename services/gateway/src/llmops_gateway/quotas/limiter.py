"""Quotas and budgets in Redis: every limit of a request checked and reserved in one atomic script call.

The check is the gateway's only Redis round trip on a request's path, and a busy key's requests mostly skip it:
a process leases quota ahead of use (``quotas.plan``). It goes through one pipelined connection of its own
(``quotas.pipe``), shared by concurrent requests. Reconciliations (real usage replacing
the reservation) do not need to be immediate: they are summed per counter and written together every
``reconcile_interval_s``, one round trip for all.
"""

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass, field
from importlib.resources import files

from llmops_gateway.limits import Limits
from llmops_gateway.quotas.pipe import PipelinedRedis, ReplyError, pack
from llmops_gateway.quotas.plan import Plan

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Script:
    source: str
    sha: str

    @classmethod
    def load(cls, name: str) -> "_Script":
        source = files(__package__).joinpath(name).read_text()
        return cls(source, hashlib.sha1(source.encode()).hexdigest())


_RESERVE = _Script.load("reserve.lua")
_RECONCILE = _Script.load("reconcile.lua")


@dataclass(slots=True)
class Reservation:
    """What one request reserved: its token estimate and, per limit that is set, the state after it."""

    tokens: int
    plan: Plan | None = None  # None: no limit applies
    windows: list[int] = field(default_factory=list)  # per limit: the window its cost was counted in
    remaining: list[int] = field(default_factory=list)
    reset_s: list[float] = field(default_factory=list)

    def token_counters(self) -> list[str]:
        """The counters (of this window) that hold the token estimate."""
        if self.plan is None:
            return []
        return [f"{base}:{self.windows[i]}" for i, base in self.plan.token_counter_bases]


class QuotaExceeded(Exception):
    def __init__(self, *, scope: str, kind: str, limit: int, retry_after_s: float, cost: int) -> None:
        super().__init__(f"{scope} {kind} limit {limit} reached")
        self.scope, self.kind, self.limit, self.retry_after_s, self.cost = scope, kind, limit, retry_after_s, cost


class QuotaStoreUnavailable(Exception):
    pass


class QuotaLimiter:
    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str,
        lease_s: float = 0.1,
        timeout_s: float = 2.0,
        reconcile_interval_s: float = 0.02,
    ) -> None:
        self._redis = PipelinedRedis(redis_url, timeout_s=timeout_s)
        self._plans: dict[tuple, Plan] = {}
        self._lease_s = lease_s
        self._prefix = prefix
        self._reconcile_interval_s = reconcile_interval_s
        self._pending: dict[str, int] = {}  # token counter -> summed correction not yet written
        self._flusher: asyncio.Task | None = None

    async def reserve(
        self, *, key_id: str, key_limits: Limits, route: str, route_limits: Limits, tokens: int
    ) -> Reservation:
        """Count one request and ``tokens`` against every limit that is set, or raise ``QuotaExceeded``."""
        plan = self._plan(key_id, key_limits, route, route_limits)
        if not plan.limits:
            return Reservation(tokens=tokens)
        now = time.monotonic()
        plan.note(tokens, now)
        if plan.spend(tokens, now):
            return _from_lease(plan, tokens, now)
        if plan.refill is not None:  # once: if the refill does not cover this request, it asks Redis itself
            await plan.refill.wait()
            now = time.monotonic()
            if plan.spend(tokens, now):
                return _from_lease(plan, tokens, now)
        leases = [0] * len(plan.limits) if plan.refill is not None else plan.wanted_leases(now)
        refill = asyncio.Event() if any(leases) else None
        if refill is not None:
            plan.refill = refill
        try:
            result = await self._evalsha(_RESERVE, plan.command(tokens, leases))
        except (ReplyError, OSError) as exc:
            raise QuotaStoreUnavailable(repr(exc)) from exc
        finally:
            if refill is not None:
                plan.refill = None
                refill.set()
        if result[0] == 0:
            index = result[1] - 1
            scope, kind, limit = plan.limits[index]
            cost = plan.costs(tokens)[index]
            raise QuotaExceeded(scope=scope, kind=kind, limit=limit, retry_after_s=result[2] / 1000, cost=cost)
        windows, remaining, leased = result[3::4], result[4::4], result[6::4]
        # From the time before the call: a lease ends no later than its window does on Redis's clock.
        ends_at = [now + reset_ms / 1000 for reset_ms in result[5::4]]
        if any(leased):
            plan.granted(windows, remaining, ends_at, leased)
        return _reservation(plan, tokens, windows, remaining, ends_at, now)

    def _plan(self, key_id: str, key_limits: Limits, route: str, route_limits: Limits) -> Plan:
        """The limits to check and the script call, encoded once per key, route and limits (not per request)."""
        cache_key = (key_id, route, key_limits.rpm, key_limits.tpm, key_limits.tpd)
        cache_key += (route_limits.rpm, route_limits.tpm, route_limits.tpd)
        plan = self._plans.get(cache_key)
        if plan is None:
            if len(self._plans) > 10_000:  # keys and routes come and go: never grow without bound
                self._plans.clear()
            plan = self._plans[cache_key] = Plan(
                _RESERVE.sha, self._prefix, key_id, key_limits, route, route_limits, self._lease_s
            )
        return plan

    async def _evalsha(self, script: "_Script", command: bytes):
        try:
            return await self._redis.call(command)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        # A restarted or flushed Redis has forgotten the script: load it and go again.
        await self._redis.call(pack(b"SCRIPT", b"LOAD", script.source))
        return await self._redis.call(command)

    def reconcile(self, reservation: Reservation, *, actual_tokens: int) -> None:
        """Replace the reserved token estimate by the real usage, in the next batched write."""
        delta = actual_tokens - reservation.tokens
        counters = reservation.token_counters() if delta else []
        if not counters:
            return
        for counter in counters:
            self._pending[counter] = self._pending.get(counter, 0) + delta
        if self._flusher is None:
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
            command = pack(b"EVALSHA", _RECONCILE.sha, len(counters), *counters, *(pending[c] for c in counters))
            await self._evalsha(_RECONCILE, command)
        except (ReplyError, OSError) as exc:
            logger.warning("quota reconciliation failed", extra={"error": repr(exc), "counters": len(counters)})

    async def aclose(self) -> None:
        """Writes the corrections still pending (the app's lifespan calls it before closing Redis)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
        self._redis.close()


def _from_lease(plan: Plan, tokens: int, now: float) -> Reservation:
    lease = plan.lease
    return _reservation(plan, tokens, lease.windows, lease.remaining, lease.ends_at, now)


def _reservation(
    plan: Plan, tokens: int, windows: list[int], remaining: list[int], ends_at: list[float], now: float
) -> Reservation:
    """Remaining counts what this process still holds leased in the same window: it is not used yet."""
    lease = plan.lease
    if lease is not None:
        remaining = [r + (lease.balance[i] if lease.windows[i] == windows[i] else 0) for i, r in enumerate(remaining)]
    return Reservation(tokens, plan, windows, remaining, [max(0.0, end - now) for end in ends_at])
