"""Redis killed and started again (empty, as a cache node that crashed) under a gateway with traffic.

The gateway's Redis here is a private one (``PrivateRedis``): the session's shared Redis is never touched.
What must hold: the gateway recovers by itself (no restart), quota counters never go negative, and the quota
failure mode decides what requests with limits get while Redis is away (closed: 503 in the OpenAI error body;
open: served unmetered).
"""

import threading
import time
from typing import Self

import httpx
import pytest
import redis

from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.redis_server import PrivateRedis

pytestmark = postgres_only  # Redis faults, not the SQL store


@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.stop()


class CounterWatch:
    """Reads every quota counter of a gateway over and over, through restarts; keeps the lowest value seen."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url, self.prefix = url, prefix
        self.lowest: int | None = None
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def read_once(self) -> None:
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            for name in client.scan_iter(match=f"{self.prefix}*"):
                value = client.get(name)
                if value is not None:
                    self.lowest = int(value) if self.lowest is None else min(self.lowest, int(value))
            self.reads += 1
        except redis.RedisError:
            pass  # Redis is down: nothing to read
        finally:
            client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.read_once()
            time.sleep(0.005)


def wait_until_served(client: httpx.Client, route: str, attempts: int = 100) -> list[int]:
    """Statuses until the first 200: the gateway must get there by itself."""
    statuses = []
    for _ in range(attempts):
        statuses.append(client.post("/v1/chat/completions", json=chat_body(route)).status_code)
        if statuses[-1] == 200:
            return statuses
        time.sleep(0.05)
    raise AssertionError(f"the gateway did not recover from the Redis restart: {statuses[-10:]}")


def test_a_reservation_from_before_the_restart_does_not_drive_a_counter_negative(
    make_gateway, sql_url, upstreams, private_redis
):
    """Request A reserves prompt + 512 tokens, Redis restarts empty while A waits for its answer, request B
    starts the counter again; A's correction (-500 or so) must not take the counter below zero."""
    gateway = make_gateway(sql_url=sql_url, GATEWAY_REDIS_URL=private_redis.url, GATEWAY_QUOTA_LEASE_S="0")
    alpha = upstreams["alpha"]
    route = gateway.put_route(variants=[variant("a", alpha)])
    _, key = gateway.create_key(limits={"tpm": 1_000_000})
    slow: list[httpx.Response] = []
    alpha.behaviour.delay_s = 1.5
    with CounterWatch(private_redis.url, gateway.env["GATEWAY_REDIS_KEY_PREFIX"]) as watch:
        with gateway.client(key) as client:
            first = threading.Thread(
                target=lambda: slow.append(client.post("/v1/chat/completions", json=chat_body(route)))
            )
            first.start()
            while not alpha.stats.requests:  # A is at the upstream, its reservation counted
                time.sleep(0.01)
            alpha.behaviour.delay_s = 0
            private_redis.kill()
            private_redis.start()
            wait_until_served(client, route)  # B: a new counter, reconciled to its 16 tokens
            first.join(10)
        time.sleep(0.2)  # the batched corrections (every 20 ms) are written
        watch.read_once()
    assert slow[0].status_code == 200
    assert watch.reads > 0 and watch.lowest is not None and watch.lowest >= 0


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_redis_restarted_under_load(make_gateway, sql_url, upstreams, private_redis, mode):
    gateway = make_gateway(sql_url=sql_url, GATEWAY_REDIS_URL=private_redis.url, GATEWAY_QUOTA_FAILURE_MODE=mode)
    alpha = upstreams["alpha"]
    alpha.behaviour.delay_s = 0.05  # requests in flight across the kill
    route = gateway.put_route(variants=[variant("a", alpha)])
    _, key = gateway.create_key(limits={"rpm": 1_000_000, "tpm": 100_000_000})
    results: list[tuple[str, int, dict]] = []  # (phase, status, error body)
    phase = ["before"]
    stop = threading.Event()

    def load() -> None:
        with gateway.client(key) as client:
            while not stop.is_set():
                response = client.post("/v1/chat/completions", json=chat_body(route))
                error = response.json().get("error") if response.status_code != 200 else {}
                results.append((phase[0], response.status_code, error))

    errors_before = gateway.metric("llmops_gateway_quota_store_errors_total", {"mode": mode})
    with CounterWatch(private_redis.url, gateway.env["GATEWAY_REDIS_KEY_PREFIX"]) as watch:
        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        while len(results) < 20:
            time.sleep(0.01)
        private_redis.kill()
        phase[0] = "down"
        seen = len(results)
        while len(results) < seen + 20:  # requests that found Redis gone
            time.sleep(0.01)
        private_redis.start()
        phase[0] = "after"
        with gateway.client(key) as client:
            wait_until_served(client, route)
            seen = len(results)
            while len(results) < seen + 40:
                time.sleep(0.01)
        stop.set()
        for worker in workers:
            worker.join(10)
        time.sleep(0.2)
        watch.read_once()

    statuses = {(p, s) for p, s, _ in results}
    refusals = [error for _, status, error in results if status != 200]
    assert all(status in (200, 503) for _, status in statuses), statuses
    assert all(error["code"] == "quota_store_unavailable" and error["type"] and error["message"] for error in refusals)
    if mode == "closed":
        assert ("down", 503) in statuses  # limits cannot be checked: refused
    else:
        assert not refusals  # served unmetered
    assert gateway.metric("llmops_gateway_quota_store_errors_total", {"mode": mode}) > errors_before
    # Recovered by itself: the last requests of the run were all served and metered again.
    assert [status for _, status, _ in results[-20:]] == [200] * 20
    assert watch.lowest is not None and watch.lowest >= 0
    ready = httpx.get(f"{gateway.url}/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["redis"] == "ok"
