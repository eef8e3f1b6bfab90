"""Quotas and budgets in Redis: every limit of a request checked and reserved in one atomic script call.

The check is the gateway's only Redis round trip on a request's path, so it skips redis-py's command
machinery (retries, observability hooks, deprecation checks, a task per send for its socket timeout: together
as much CPU as the rest of the check) and sends a pre-encoded command on connections of its own, with one
deadline around the whole exchange; redis-py still reads and parses the reply. Reconciliations (real usage
replacing the reservation) do not need to be immediate: they are summed per counter and written together every
``reconcile_interval_s``, one round trip for all.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from importlib.resources import files

import redis.asyncio as redis
from redis.exceptions import NoScriptError, RedisError

from llmops_gateway.limits import Limits

logger = logging.getLogger(__name__)

_RESERVE = files(__package__).joinpath("reserve.lua").read_text()
_RECONCILE = files(__package__).joinpath("reconcile.lua").read_text()

_WINDOWS = {"rpm": 60, "tpm": 60, "tpd": 86_400}


@dataclass(frozen=True, slots=True)
class LimitState:
    scope: str  # "key" or "route"
    kind: str  # "rpm", "tpm" or "tpd"
    limit: int
    remaining: int
    reset_s: float


@dataclass(slots=True)
class Reservation:
    tokens: int
    token_counters: list[str] = field(default_factory=list)
    states: list[LimitState] = field(default_factory=list)


class QuotaExceeded(Exception):
    def __init__(self, *, scope: str, kind: str, limit: int, retry_after_s: float, cost: int) -> None:
        super().__init__(f"{scope} {kind} limit {limit} reached")
        self.scope, self.kind, self.limit, self.retry_after_s, self.cost = scope, kind, limit, retry_after_s, cost


class QuotaStoreUnavailable(Exception):
    pass


class QuotaLimiter:
    def __init__(
        self, client: redis.Redis, *, prefix: str, timeout_s: float = 2.0, reconcile_interval_s: float = 0.02
    ) -> None:
        self._client = client
        pool = client.connection_pool
        self._connection_class = pool.connection_class
        self._connection_kwargs = {**pool.connection_kwargs, "socket_timeout": None}  # our deadline instead
        self._idle: list = []  # connections between checks; as many as checks ever ran at once
        self._timeout_s = timeout_s
        self._prefix = prefix
        self._reserve = client.register_script(_RESERVE)
        self._reconcile = client.register_script(_RECONCILE)
        self._reconcile_interval_s = reconcile_interval_s
        self._pending: dict[str, int] = {}  # token counter -> summed correction not yet written
        self._flusher: asyncio.Task | None = None

    async def reserve(
        self, *, key_id: str, key_limits: Limits, route: str, route_limits: Limits, tokens: int
    ) -> Reservation:
        """Count one request and ``tokens`` against every limit that is set, or raise ``QuotaExceeded``."""
        plan: list[tuple[str, str, int, int]] = []  # (scope, kind, limit, cost)
        args: list = []
        for scope, limits, base in (
            ("key", key_limits, f"{self._prefix}{{{key_id}}}"),
            ("route", route_limits, f"{self._prefix}{{{key_id}}}:r:{route}"),
        ):
            for kind in ("rpm", "tpm", "tpd"):
                limit = getattr(limits, kind)
                if limit is None:
                    continue
                cost = 1 if kind == "rpm" else tokens
                plan.append((scope, kind, limit, cost))
                args += [f"{base}:{kind}", _WINDOWS[kind], limit, cost]
        if not plan:
            return Reservation(tokens=tokens)
        try:
            result = await self._evalsha(self._reserve, len(plan), *args)
        except (RedisError, OSError) as exc:
            raise QuotaStoreUnavailable(repr(exc)) from exc
        if result[0] == 0:
            scope, kind, limit, cost = plan[result[1] - 1]
            raise QuotaExceeded(scope=scope, kind=kind, limit=limit, retry_after_s=result[2] / 1000, cost=cost)
        reservation = Reservation(tokens=tokens)
        for i, (scope, kind, limit, _) in enumerate(plan):
            counter, remaining, reset_ms = result[3 + 3 * i : 6 + 3 * i]
            reservation.states.append(LimitState(scope, kind, limit, int(remaining), reset_ms / 1000))
            if kind != "rpm":
                reservation.token_counters.append(counter.decode() if isinstance(counter, bytes) else counter)
        return reservation

    async def _evalsha(self, script, *args):
        """One EVALSHA. On an error or cancellation redis-py drops the connection (it reconnects on next use), so
        a half-read reply never reaches the next check."""
        connection = self._idle.pop() if self._idle else self._connection_class(**self._connection_kwargs)
        try:
            async with asyncio.timeout(self._timeout_s):
                await connection.send_packed_command(_pack(b"EVALSHA", script.sha, 0, *args), check_health=False)
                try:
                    return await connection.read_response()
                except NoScriptError:  # a restarted or flushed Redis: load the script and go again
                    await connection.send_packed_command(_pack(b"SCRIPT", b"LOAD", script.script), check_health=False)
                    await connection.read_response()
                    await connection.send_packed_command(_pack(b"EVALSHA", script.sha, 0, *args), check_health=False)
                    return await connection.read_response()
        except TimeoutError:
            await connection.disconnect(nowait=True)
            raise
        finally:
            self._idle.append(connection)

    def reconcile(self, reservation: Reservation, *, actual_tokens: int) -> None:
        """Replace the reserved token estimate by the real usage, in the next batched write."""
        delta = actual_tokens - reservation.tokens
        if delta == 0 or not reservation.token_counters:
            return
        for counter in reservation.token_counters:
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
            await self._reconcile(keys=counters, args=[pending[c] for c in counters])
        except (RedisError, OSError) as exc:
            logger.warning("quota reconciliation failed", extra={"error": repr(exc), "counters": len(counters)})

    async def aclose(self) -> None:
        """Writes the corrections still pending (the app's lifespan calls it before closing Redis)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
        for connection in self._idle:
            await connection.disconnect()


def _pack(*args) -> bytes:
    """A command in RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)
