"""Slowing down repeated bad credentials: API keys on the OpenAI surface, admin tokens on the admin API, and the
console's sign-in (a limiter of its own policy, surface ``console``: a success there clears the address's count).

Failures are counted in Redis per client address, and per displayed key prefix (``sk-llmops-`` + 6 characters, the
part an admin list shows: a distributed guess at the rest of one key is counted whatever address it comes from), in a
fixed window, so every replica sees the same count. Past the limit a client is refused with 429 ``too_many_failed_auth``
and ``Retry-After`` (the window's remaining seconds) *before* its credential is checked, so a blocked client learns
nothing from further guesses. Each replica also remembers the blocks it has seen: a blocked client's requests cost a
dict lookup, not a Redis round trip, and a valid key's requests never wait for Redis (only keys this replica has not
cached do, and they wait for SQL anyway).

Redis unreachable: with ``GATEWAY_QUOTA_FAILURE_MODE=open`` nothing is counted (logged and counted as a metric); with
``closed`` (the default) each replica counts on its own until Redis is back: guessing stays slowed, and valid keys are
never refused for want of Redis (refusing every unknown key would turn a Redis outage into an outage of the API).
"""

import logging
import math
import time
from dataclasses import dataclass

import redis.asyncio as redis
from prometheus_client import CollectorRegistry, Counter
from redis.exceptions import RedisError

from llmops_common.errors import APIError

logger = logging.getLogger(__name__)

_MAX_TRACKED = 100_000  # local entries kept at most: bounded memory under a flood of addresses
_REDIS_BACKOFF_S = 1.0  # after a Redis error, count locally this long before trying it again


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    limit: int  # failures per window and client address; 0 turns counting off
    prefix_limit: int  # failures per window and displayed key prefix; 0: not counted by prefix
    window_s: int
    fail_open: bool  # Redis unreachable: count nothing (True) or count per replica (False)
    # Peers whose X-Forwarded-For names the client (a load balancer, an ingress). Without them every client behind a
    # balancer would share its address, and one bad client would lock all of them out.
    trusted_proxies: frozenset[str] = frozenset()


class LockoutMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.failures = Counter(
            "llmops_gateway_auth_failures",
            "Failed authentications counted (api: API keys, admin: admin tokens, console: sign-ins)",
            ("surface",),
            registry=registry,
        )
        self.refusals = Counter(
            "llmops_gateway_auth_lockouts",
            "Requests refused with 429 after repeated failed authentications",
            ("surface", "by"),
            registry=registry,
        )
        self.store_errors = Counter(
            "llmops_gateway_auth_lockout_store_errors", "Failure counts that could not reach Redis", registry=registry
        )


class FailedAuthLimiter:
    def __init__(self, client: redis.Redis, *, prefix: str, policy: LockoutPolicy, metrics: LockoutMetrics) -> None:
        self._redis, self._prefix, self._policy, self._metrics = client, prefix + "authfail:", policy, metrics
        self._blocked: dict[str, float] = {}  # identity -> monotonic time its block ends (seen by this replica)
        self._local: dict[str, tuple[float, int]] = {}  # identity -> (window start, failures): Redis down, closed
        self._redis_down_until = 0.0

    @property
    def enabled(self) -> bool:
        return self._policy.limit > 0

    def address(self, scope) -> str | None:
        """The client's address: the peer's, or behind trusted proxies the last X-Forwarded-For entry they did not
        add (entries further left are whatever the client chose to send)."""
        peer = scope.get("client")
        address = peer[0] if peer else None
        if address not in self._policy.trusted_proxies:
            return address
        forwarded = [value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"]
        hops = [hop.strip() for hop in ",".join(forwarded).split(",") if hop.strip()]
        while hops and hops[-1] in self._policy.trusted_proxies:
            hops.pop()
        return hops[-1][:64] if hops else address

    def _identities(self, surface: str, address: str | None, key_prefix: str | None) -> list[tuple[str, str, int]]:
        """(by, identity, limit) for each dimension counted."""
        found = [("address", f"{surface}:ip:{address or '-'}", self._policy.limit)]
        if key_prefix and self._policy.prefix_limit > 0:
            found.append(("prefix", f"{surface}:key:{key_prefix}", self._policy.prefix_limit))
        return found

    def refuse_if_blocked(self, surface: str, address: str | None, key_prefix: str | None = None) -> None:
        """The blocks this replica knows of: no I/O, cheap enough for every request."""
        if not self._blocked:
            return
        now = time.monotonic()
        for by, identity, _ in self._identities(surface, address, key_prefix):
            until = self._blocked.get(identity)
            if until is not None:
                if until > now:
                    self._refuse(surface, by, until - now)
                del self._blocked[identity]

    async def check(self, surface: str, address: str | None, key_prefix: str | None = None) -> None:
        """Raises 429 if the client is over a limit on any replica (one Redis round trip)."""
        if not self.enabled:
            return
        self.refuse_if_blocked(surface, address, key_prefix)
        dims = self._identities(surface, address, key_prefix)
        counts = await self._read([identity for _, identity, _ in dims])
        for (by, identity, limit), (count, ttl) in zip(dims, counts, strict=True):
            if count >= limit:
                self._block(identity, ttl)
                self._refuse(surface, by, ttl)

    async def failed(self, surface: str, address: str | None, key_prefix: str | None = None) -> None:
        """Counts one failure; the client's next request is refused once it reaches a limit."""
        if not self.enabled:
            return
        self._metrics.failures.labels(surface).inc()
        dims = self._identities(surface, address, key_prefix)
        counts = await self._increment([identity for _, identity, _ in dims])
        for (_, identity, limit), (count, ttl) in zip(dims, counts, strict=True):
            if count >= limit:
                self._block(identity, ttl)

    async def succeeded(self, surface: str, address: str | None) -> None:
        """Clears the address's failures (the console's sign-in: whoever signs in is not the guesser to slow)."""
        if not self.enabled:
            return
        identity = self._identities(surface, address, None)[0][1]
        self._blocked.pop(identity, None)
        self._local.pop(identity, None)
        if self._redis_usable():
            try:
                await self._redis.delete(self._prefix + identity)
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)

    def _refuse(self, surface: str, by: str, retry_after_s: float):
        self._metrics.refusals.labels(surface, by).inc()
        raise APIError(
            429,
            "too many failed authentications: try again later",
            code="too_many_failed_auth",
            type="rate_limit_error",
            headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))},
        )

    def _block(self, identity: str, ttl_s: float) -> None:
        if len(self._blocked) >= _MAX_TRACKED:
            self._blocked.clear()
        self._blocked[identity] = time.monotonic() + ttl_s

    async def _read(self, identities: list[str]) -> list[tuple[int, float]]:
        if self._redis_usable():
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for identity in identities:
                        pipe.get(self._prefix + identity)
                        pipe.pttl(self._prefix + identity)
                    replies = await pipe.execute()
                return [
                    _count_ttl(replies[i], replies[i + 1], self._policy.window_s) for i in range(0, len(replies), 2)
                ]
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)
        return [self._local_count(identity, add=0) for identity in identities]

    async def _increment(self, identities: list[str]) -> list[tuple[int, float]]:
        if self._redis_usable():
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    for identity in identities:
                        pipe.incr(self._prefix + identity)
                        pipe.expire(self._prefix + identity, self._policy.window_s, nx=True)  # the window's start
                        pipe.pttl(self._prefix + identity)
                    replies = await pipe.execute()
                return [
                    _count_ttl(replies[i], replies[i + 2], self._policy.window_s) for i in range(0, len(replies), 3)
                ]
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)
        return [self._local_count(identity, add=1) for identity in identities]

    def _redis_usable(self) -> bool:
        return time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: Exception) -> None:
        self._metrics.store_errors.inc()
        self._redis_down_until = time.monotonic() + _REDIS_BACKOFF_S
        logger.warning(
            "failed-authentication counts unreachable",
            extra={"error": repr(exc), "mode": "open" if self._policy.fail_open else "closed: counted per replica"},
        )

    def _local_count(self, identity: str, *, add: int) -> tuple[int, float]:
        if self._policy.fail_open:
            return 0, 0.0
        now = time.monotonic()
        start, count = self._local.get(identity, (now, 0))
        if now - start >= self._policy.window_s:
            start, count = now, 0
        if add:
            if len(self._local) >= _MAX_TRACKED:
                self._local.clear()
            self._local[identity] = (start, count + add)
        return count + add, self._policy.window_s - (now - start)


def _count_ttl(count, pttl_ms, window_s: int) -> tuple[int, float]:
    # pttl is -2 (no key) or -1 (no expiry: cannot happen with the NX expire, but never block forever)
    return int(count or 0), (pttl_ms / 1000 if pttl_ms and pttl_ms > 0 else float(window_s))
