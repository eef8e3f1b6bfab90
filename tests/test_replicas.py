"""Several gateway replicas on one Redis and one SQL store behave as one gateway."""

import asyncio
import time

import httpx
import pytest
import redis

from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, variant


@pytest.fixture(scope="module")
def replicas(make_gateway, sql_url):
    return make_gateway(sql_url=sql_url, replicas=2)


def _wait_for_fresh_minute_window(redis_url: str, needed_s: float) -> None:
    """Quotas use fixed windows on Redis's clock: start a burst where it cannot straddle a minute edge."""
    client = redis.Redis.from_url(redis_url)
    seconds, micros = client.time()
    into_minute = seconds % 60 + micros / 1e6
    if into_minute > 60 - needed_s:
        time.sleep(60 - into_minute + 0.05)


async def _burst(urls: list[str], key: str, route: str, count: int) -> list[int]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {key}"}, timeout=30, limits=limits) as client:
        responses = await asyncio.gather(
            *(client.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=chat_body(route)) for i in range(count))
        )
    return [r.status_code for r in responses]


@postgres_only  # the count is Redis's; what replicas share through SQL is in the tests below
def test_rpm_is_exact_across_replicas_under_concurrency(replicas, upstreams, redis_url):
    route = replicas.put_route(variants=[variant("a", upstreams["alpha"])])
    _, key = replicas.create_key(limits={"rpm": 30})
    _, unlimited = replicas.create_key()
    for replica in range(2):  # both replicas know the route before the burst: this test is about quotas
        with replicas.client(unlimited, replica=replica) as client:
            deadline = time.monotonic() + 5
            while client.post("/v1/chat/completions", json=chat_body(route)).status_code != 200:
                assert time.monotonic() < deadline, f"replica {replica} never served the new route"
                time.sleep(0.05)
    upstreams["alpha"].reset()
    _wait_for_fresh_minute_window(redis_url, needed_s=10)
    statuses = asyncio.run(_burst([r.url for r in replicas.replicas], key, route, 100))
    assert statuses.count(200) == 30
    assert statuses.count(429) == 70
    assert len(upstreams["alpha"].stats.requests) == 30


def test_revocation_reaches_every_replica_within_a_second(replicas, upstreams):
    route = replicas.put_route(variants=[variant("a", upstreams["alpha"])])
    key_id, key = replicas.create_key()
    with replicas.client(key, replica=1) as other:
        assert other.post("/v1/chat/completions", json=chat_body(route)).status_code == 200  # now cached there
        with replicas.admin(replica=0) as admin:
            assert admin.delete(f"/admin/keys/{key_id}").status_code == 200
        revoked_at = time.monotonic()
        while other.post("/v1/chat/completions", json=chat_body(route)).status_code == 200:
            assert time.monotonic() - revoked_at < 1.0, "replica 1 still accepts a key revoked through replica 0"
            time.sleep(0.02)


def test_route_changes_reach_every_replica_without_restart(replicas, upstreams):
    route = replicas.put_route(variants=[variant("a", upstreams["alpha"]), variant("b", upstreams["beta"], weight=0)])
    _, key = replicas.create_key()
    with replicas.client(key, replica=1) as other:
        first = other.post("/v1/chat/completions", json=chat_body(route))
        assert first.headers.get("x-llmops-variant") == "a", first.text
        replicas.put_route(
            route, replica=0, variants=[variant("a", upstreams["alpha"], weight=0), variant("b", upstreams["beta"])]
        )
        changed_at = time.monotonic()
        while other.post("/v1/chat/completions", json=chat_body(route)).headers["x-llmops-variant"] != "b":
            assert time.monotonic() - changed_at < 2.0, "replica 1 kept the old weights"
            time.sleep(0.05)
