"""Quotas and budgets in Redis: every limit of a request checked and reserved in one atomic script call.

The check is the gateway's only Redis round trip on a request's path: it goes through one pipelined
connection of its own (``quotas.pipe``), shared by concurrent requests. Reconciliations (real usage replacing
the reservation) do not need to be immediate: they are summed per counter and written together every
``reconcile_interval_s``, one round trip for all.
"""

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass, field
from importlib.resources import files

from llmops_gateway.limits import Limits
from llmops_gateway.quotas.pipe import PipelinedRedis, ReplyError, bulk, pack

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

_WINDOWS = {"rpm": 60, "tpm": 60, "tpd": 86_400}


@dataclass(slots=True)
class Reservation:
    """What one request reserved: its token estimate and, for each limit that is set, the script's answer."""

    tokens: int
    plan: "_Plan | None" = None  # None: no limit applies
    result: list[int] = field(default_factory=list)  # the script's reply: see reserve.lua

    def states(self):
        """(kind, limit, remaining, reset in seconds) of every limit checked."""
        if self.plan is not None:
            for i, (_, kind, limit) in enumerate(self.plan.limits):
                yield kind, limit, self.result[4 + 3 * i], self.result[5 + 3 * i] / 1000

    def token_counters(self) -> list[str]:
        """The counters (of this window) that hold the token estimate."""
        if self.plan is None:
            return []
        return [f"{base}:{self.result[3 + 3 * i]}" for i, base in self.plan.token_counter_bases]


class QuotaExceeded(Exception):
    def __init__(self, *, scope: str, kind: str, limit: int, retry_after_s: float, cost: int) -> None:
        super().__init__(f"{scope} {kind} limit {limit} reached")
        self.scope, self.kind, self.limit, self.retry_after_s, self.cost = scope, kind, limit, retry_after_s, cost


class QuotaStoreUnavailable(Exception):
    pass


class QuotaLimiter:
    def __init__(
        self, redis_url: str, *, prefix: str, timeout_s: float = 2.0, reconcile_interval_s: float = 0.02
    ) -> None:
        self._redis = PipelinedRedis(redis_url, timeout_s=timeout_s)
        self._plans: dict[tuple, _Plan] = {}
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
        try:
            result = await self._evalsha(_RESERVE, plan.command(tokens))
        except (ReplyError, OSError) as exc:
            raise QuotaStoreUnavailable(repr(exc)) from exc
        if result[0] == 0:
            scope, kind, limit = plan.limits[result[1] - 1]
            cost = 1 if kind == "rpm" else tokens
            raise QuotaExceeded(scope=scope, kind=kind, limit=limit, retry_after_s=result[2] / 1000, cost=cost)
        return Reservation(tokens=tokens, plan=plan, result=result)

    def _plan(self, key_id: str, key_limits: Limits, route: str, route_limits: Limits) -> "_Plan":
        """The limits to check and the script call, encoded once per key, route and limits (not per request)."""
        cache_key = (key_id, route, *_values(key_limits), *_values(route_limits))
        plan = self._plans.get(cache_key)
        if plan is None:
            if len(self._plans) > 10_000:  # keys and routes come and go: never grow without bound
                self._plans.clear()
            plan = self._plans[cache_key] = _Plan.build(self._prefix, key_id, key_limits, route, route_limits)
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
        if delta == 0 or reservation.plan is None or not reservation.plan.token_counter_bases:
            return
        for counter in reservation.token_counters():
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


def _values(limits: Limits) -> tuple:
    return limits.rpm, limits.tpm, limits.tpd


@dataclass(frozen=True, slots=True)
class _Plan:
    limits: list[tuple[str, str, int]]  # (scope, kind, limit), in the script's order
    head: bytes  # EVALSHA, the script and its argument count
    fixed: list[bytes]  # per limit: its counter, window and limit, encoded; its cost follows
    token_counter_bases: list[tuple[int, str]]  # (index in limits, counter name without its window) of token limits

    @classmethod
    def build(cls, prefix: str, key_id: str, key_limits: Limits, route: str, route_limits: Limits) -> "_Plan":
        limits, fixed, token_counter_bases = [], [], []
        for scope, values, base in (
            ("key", key_limits, f"{prefix}{{{key_id}}}"),
            ("route", route_limits, f"{prefix}{{{key_id}}}:r:{route}"),
        ):
            for kind, limit in zip(("rpm", "tpm", "tpd"), _values(values), strict=True):
                if limit is not None:
                    if kind != "rpm":
                        token_counter_bases.append((len(limits), f"{base}:{kind}"))
                    limits.append((scope, kind, limit))
                    fixed.append(bulk(f"{base}:{kind}") + bulk(_WINDOWS[kind]) + bulk(limit))
        head = b"*%d\r\n" % (4 + 4 * len(limits)) + bulk("EVALSHA") + bulk(_RESERVE.sha) + bulk(0) + bulk(len(limits))
        return cls(limits, head, fixed, token_counter_bases)

    def command(self, tokens: int) -> bytes:
        token_cost = bulk(tokens)
        parts = [self.head]
        for (_, kind, _), fixed in zip(self.limits, self.fixed, strict=True):
            parts += (fixed, b"$1\r\n1\r\n" if kind == "rpm" else token_cost)
        return b"".join(parts)
