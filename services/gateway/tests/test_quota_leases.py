"""Quota leases (quotas.plan) against the real Redis: a busy key mostly skips Redis, no limit is ever exceeded,
and quiet keys, small limits and a zero lease stay exact per request."""

import asyncio
import time
import uuid

import pytest
import redis.asyncio as redis

from llmops_gateway.limits import Limits
from llmops_gateway.quotas.limiter import QuotaExceeded, QuotaLimiter

NO_LIMITS = Limits()


class CountingLimiter(QuotaLimiter):
    """Counts the reserve script calls that reach Redis."""

    def __init__(self, redis_url: str, **options) -> None:
        self.client = redis.from_url(redis_url)
        super().__init__(self.client, **options)
        self.calls = 0
        script = self._reserve_script

        async def counted(**arguments):
            self.calls += 1
            return await script(**arguments)

        self._reserve_script = counted

    async def aclose(self) -> None:
        await super().aclose()
        await self.client.aclose()


async def away_from_a_minute_edge(redis_url: str) -> None:
    """The rpm window is a minute on Redis's clock: start a test well inside one."""
    client = redis.from_url(redis_url)
    seconds, _ = await client.time()
    await client.aclose()
    into_minute = int(seconds) % 60
    if into_minute > 45:
        await asyncio.sleep(61 - into_minute)


async def reserve_many(limiter: QuotaLimiter, key_id: str, limits: Limits, count: int, *, tokens: int = 10) -> int:
    """``count`` requests, 16 at a time; how many were admitted."""
    admitted = 0

    async def one() -> None:
        nonlocal admitted
        try:
            await limiter.reserve(key_id=key_id, key_limits=limits, route="r", route_limits=NO_LIMITS, tokens=tokens)
            admitted += 1
        except QuotaExceeded:
            pass

    for start in range(0, count, 16):
        await asyncio.gather(*(one() for _ in range(min(16, count - start))))
    return admitted


async def busy_for(limiter: QuotaLimiter, key_id: str, limits: Limits, seconds: float) -> int:
    """Steady traffic long enough for the limiter to measure its rate; how many were admitted."""
    admitted, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        admitted += await reserve_many(limiter, key_id, limits, 64)
    return admitted


async def test_a_busy_key_mostly_skips_redis_and_headers_count_down(redis_url):
    await away_from_a_minute_edge(redis_url)
    limiter = CountingLimiter(redis_url, prefix=f"lease-test:{uuid.uuid4().hex}:", lease_s=0.1)
    limits = Limits(rpm=10**7, tpm=10**9)
    await busy_for(limiter, "busy", limits, 1.2)  # the first second sizes the lease
    calls = limiter.calls
    assert await reserve_many(limiter, "busy", limits, 2000) == 2000
    assert limiter.calls - calls < 2000 / 10, limiter.calls - calls
    # Local spending shows in the headers as it would from Redis: one request less each time.
    reservations = [
        await limiter.reserve(key_id="busy", key_limits=limits, route="r", route_limits=NO_LIMITS, tokens=10)
        for _ in range(5)
    ]
    remaining = [r.remaining[0] for r in reservations]
    assert remaining == list(range(remaining[0], remaining[0] - 5, -1)), remaining
    await limiter.aclose()


async def test_requests_that_find_the_lease_spent_wait_for_one_refill(redis_url):
    """Concurrent requests on a spent lease: one asks Redis for the next lease, the others spend from it."""
    await away_from_a_minute_edge(redis_url)
    limiter = CountingLimiter(redis_url, prefix=f"lease-test:{uuid.uuid4().hex}:", lease_s=0.1)
    limits = Limits(rpm=10**7, tpm=10**9)
    await busy_for(limiter, "busy", limits, 1.2)  # the first second sizes the lease (hundreds of requests)
    (plan,) = limiter._plans.values()
    plan.lease.balance = [0] * len(plan.limits)  # spent
    calls = limiter.calls
    assert await reserve_many(limiter, "busy", limits, 16) == 16
    assert limiter.calls - calls == 1
    await limiter.aclose()


async def test_leases_never_admit_beyond_a_limit_and_strand_little(redis_url):
    """Two processes on one key: together they admit the limit exactly, less at most a lease each."""
    await away_from_a_minute_edge(redis_url)
    prefix = f"lease-test:{uuid.uuid4().hex}:"
    first = CountingLimiter(redis_url, prefix=prefix, lease_s=0.1)
    second = CountingLimiter(redis_url, prefix=prefix, lease_s=0.1)
    limit = 300_000
    limits = Limits(rpm=limit)
    admitted = await busy_for(first, "shared", limits, 1.1) + await busy_for(second, "shared", limits, 1.1)
    calls, leased_phase = first.calls + second.calls, 0
    while True:  # both on until neither gets anything more
        more = await reserve_many(first, "shared", limits, 256) + await reserve_many(second, "shared", limits, 256)
        leased_phase += more
        if more == 0:
            break
    admitted += leased_phase
    assert limit - 2 * (limit // 100) <= admitted <= limit, admitted
    # Leases were in use: without them every admitted request, and each of the last refused ones, is a call.
    assert first.calls + second.calls - calls < leased_phase / 5 + 2 * 256, (first.calls, second.calls, calls)
    await first.aclose()
    await second.aclose()


@pytest.mark.parametrize(("lease_s", "limit"), [(0.1, 150), (0.0, 10**7)])
async def test_small_limits_and_zero_lease_check_redis_for_every_request(redis_url, lease_s, limit):
    await away_from_a_minute_edge(redis_url)
    limiter = CountingLimiter(redis_url, prefix=f"lease-test:{uuid.uuid4().hex}:", lease_s=lease_s)
    limits = Limits(rpm=limit)
    admitted = await busy_for(limiter, "exact", limits, 1.1)
    calls = limiter.calls
    admitted += await reserve_many(limiter, "exact", limits, 400)
    assert limiter.calls - calls == 400  # one script call per request, admitted or refused
    assert admitted == min(limit, admitted) and (limit > 10**6 or admitted == limit)  # a small limit holds exactly
    await limiter.aclose()
