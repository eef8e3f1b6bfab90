"""Traffic splitting, stickiness, fallbacks and circuit breakers through a real gateway process.

The test gateway runs with breaker threshold 3, cooldown 1.0 s and upstream read timeout 2.0 s (see
``llmops_testkit.gateway.gateway_env``); the route cache TTL is the default 1.0 s.
"""

import asyncio
import math
import time
from collections import Counter

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmops_gateway.routing.schemas import RouteSpec
from llmops_gateway.routing.selection import choose
from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.processes import free_port

pytestmark = postgres_only  # splits, fallbacks and breakers, not the store

SIGMAS = 4.5  # a binomial count falls outside mean ± 4.5 sigma with probability about 7e-6


def bound(n: int, p: float) -> float:
    return SIGMAS * math.sqrt(n * p * (1 - p))


@pytest.fixture
def key(gateway):
    return gateway.create_key()[1]


@pytest.fixture
def client(gateway, key):
    with gateway.client(key) as client:
        yield client


def ask(client: httpx.Client, route: str, **extra) -> httpx.Response:
    return client.post("/v1/chat/completions", json=chat_body(route, **extra))


def served_by(client: httpx.Client, route: str, **extra) -> str:
    response = ask(client, route, **extra)
    assert response.status_code == 200, response.text
    return response.headers["x-llmops-variant"]


def breaker_state(gateway, route: str, variant_name: str) -> float | None:
    text = httpx.get(f"{gateway.url}/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == "llmops_gateway_circuit_breaker_state":
            for sample in family.samples:
                if sample.labels == {"route": route, "variant": variant_name}:
                    return sample.value
    return None


# --- splitting and stickiness ---


def test_non_sticky_split_matches_weights(gateway, upstreams, client):
    route = gateway.put_route(
        variants=[variant("a", upstreams["alpha"], weight=75), variant("b", upstreams["beta"], weight=25)], sticky=False
    )
    n = 400
    counts = Counter(served_by(client, route, user="one-user") for _ in range(n))
    # 300 ± 39 for "a": a 50/50 (or sticky) split is far outside, a fair 75/25 one inside but for 1 run in 10^5.
    assert abs(counts["a"] - 0.75 * n) <= bound(n, 0.75), counts
    assert counts["a"] + counts["b"] == n
    assert (
        len(upstreams["alpha"].stats.requests) == counts["a"] and len(upstreams["beta"].stats.requests) == counts["b"]
    )


def test_sticky_users_keep_their_variant_and_split_by_weight(gateway, upstreams, client):
    variants = [variant("a", upstreams["alpha"], weight=75), variant("b", upstreams["beta"], weight=25)]
    route = gateway.put_route(variants=variants, sticky=True)
    assert len({served_by(client, route, user="steady-user") for _ in range(20)}) == 1
    spec = RouteSpec.model_validate({"variants": variants})
    users = [f"user-{i}" for i in range(300)]
    served = {user: served_by(client, route, user=user) for user in users}
    # The gateway's choice is the rendezvous hash of the route and the user, nothing per-process.
    assert served == {user: choose(route, spec, user=user).name for user in users}
    # 225 ± 34 users on "a".
    assert abs(Counter(served.values())["a"] - 0.75 * len(users)) <= bound(len(users), 0.75)


def test_without_user_the_key_is_the_sticky_identity(gateway, upstreams):
    variants = [variant("a", upstreams["alpha"]), variant("b", upstreams["beta"])]
    route = gateway.put_route(variants=variants, sticky=True)
    spec = RouteSpec.model_validate({"variants": variants})
    seen = set()
    for _ in range(20):
        key_id, secret = gateway.create_key()
        with gateway.client(secret) as client:
            names = {served_by(client, route) for _ in range(3)}
            assert names == {choose(route, spec, user=key_id).name}
            assert served_by(client, route, user=key_id) in names
        seen |= names
    assert seen == {"a", "b"}  # 20 keys on a 50/50 route: all on one side has probability 2^-19


def test_weight_change_applies_without_restart(gateway, upstreams, client):
    route = gateway.put_route(
        variants=[variant("a", upstreams["alpha"]), variant("b", upstreams["beta"])], sticky=False
    )
    assert {served_by(client, route) for _ in range(40)} == {"a", "b"}
    gateway.put_route(
        route, variants=[variant("a", upstreams["alpha"]), variant("b", upstreams["beta"], weight=0)], sticky=False
    )
    changed_at = last_b = time.monotonic()
    streak = 0
    while streak < 50:  # 50 "a" in a row under the old 50/50 split: probability 2^-50
        assert time.monotonic() - changed_at < 5, "the new weights never applied"
        if served_by(client, route) == "b":
            last_b, streak = time.monotonic(), 0
        else:
            streak += 1
    assert last_b - changed_at < 1.5  # the route cache TTL (1 s) plus slack


# --- fallbacks ---


def burst(gateway, key: str, route: str, n: int) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway.url, headers={"authorization": f"Bearer {key}"}, timeout=30) as c:
            return await asyncio.gather(*(c.post("/v1/chat/completions", json=chat_body(route)) for _ in range(n)))

    return asyncio.run(run())


def test_fallback_on_5xx(gateway, upstreams, client):
    upstreams["alpha"].behaviour.status = 500
    route = gateway.put_route(
        variants=[variant("a", upstreams["alpha"]), variant("b", upstreams["beta"], weight=0)], fallbacks=["b"]
    )
    response = ask(client, route)
    assert response.status_code == 200 and response.headers["x-llmops-variant"] == "b"
    assert response.json()["choices"][0]["message"]["content"].startswith("beta:b-model:0")
    with client.stream("POST", "/v1/chat/completions", json=chat_body(route, stream=True)) as streamed:
        assert streamed.status_code == 200 and streamed.headers["x-llmops-variant"] == "b"
        assert "beta:b-model:0" in streamed.read().decode()
    assert len(upstreams["alpha"].stats.requests) == 2 and len(upstreams["beta"].stats.requests) == 2


def test_fallback_on_connect_error(gateway, upstreams, client):
    dead = {"name": "dead", "upstream": f"http://127.0.0.1:{free_port()}/v1", "model": "m"}
    route = gateway.put_route(variants=[dead, variant("b", upstreams["beta"], weight=0)], fallbacks=["b"])
    assert served_by(client, route) == "b"


def test_fallback_on_timeout(gateway, upstreams, client):
    upstreams["alpha"].behaviour.delay_s = 3.0  # past the gateway's 2 s read timeout
    route = gateway.put_route(
        variants=[variant("a", upstreams["alpha"]), variant("b", upstreams["beta"], weight=0)], fallbacks=["b"]
    )
    started = time.monotonic()
    assert served_by(client, route) == "b"
    assert 1.9 < time.monotonic() - started < 3.0  # gave up on alpha at the read timeout, not after its answer


def test_fallback_given_as_a_full_variant(gateway, upstreams, client):
    upstreams["alpha"].behaviour.status = 503
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])], fallbacks=[variant("g", upstreams["gamma"])])
    assert served_by(client, route) == "g"
    assert upstreams["gamma"].stats.requests[-1]["model"] == "g-model"


def test_upstream_429_falls_back(gateway, upstreams, client):
    upstreams["alpha"].behaviour.status = 429
    route = gateway.put_route(
        variants=[variant("a", upstreams["alpha"]), variant("b", upstreams["beta"], weight=0)], fallbacks=["b"]
    )
    assert served_by(client, route) == "b"
    assert len(upstreams["alpha"].stats.requests) == 1
    upstreams["beta"].behaviour.status = 429  # every variant overloaded: the client sees a 429 it may retry
    response = ask(client, route)
    assert response.status_code == 429 and response.json()["error"]["code"] == "upstream_overloaded"
    assert int(response.headers["retry-after"]) >= 1


def test_all_variants_failing_is_502_in_openai_format(gateway, upstreams, client):
    upstreams["alpha"].behaviour.status = 500
    upstreams["beta"].behaviour.status = 502
    route = gateway.put_route(
        variants=[variant("a", upstreams["alpha"]), variant("b", upstreams["beta"], weight=0)], fallbacks=["b"]
    )
    response = ask(client, route)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["type"] == "server_error" and error["code"] == "upstream_error" and error["message"]
    assert response.headers["x-request-id"] and response.headers["x-llmops-variant"] == "b"  # the last tried
    assert len(upstreams["alpha"].stats.requests) == 1 and len(upstreams["beta"].stats.requests) == 1


# --- circuit breaker ---


def test_circuit_breaker_opens_probes_and_closes(gateway, upstreams, client):
    alpha = upstreams["alpha"]
    alpha.behaviour.status = 500
    route = gateway.put_route(
        variants=[variant("a", alpha), variant("b", upstreams["beta"], weight=0)], fallbacks=["b"]
    )
    for _ in range(3):
        assert served_by(client, route) == "b"
    opened_at = time.monotonic()
    assert len(alpha.stats.requests) == 3
    assert breaker_state(gateway, route, "a") == 1.0
    for _ in range(5):  # open: alpha is left alone, beta serves
        assert served_by(client, route) == "b"
    assert time.monotonic() - opened_at < 1.0, "too slow to observe the open circuit"
    assert len(alpha.stats.requests) == 3

    time.sleep(max(0.0, opened_at + 1.05 - time.monotonic()))
    assert served_by(client, route) == "b"  # the trial reached alpha, failed: open again
    reopened_at = time.monotonic()
    assert len(alpha.stats.requests) == 4 and breaker_state(gateway, route, "a") == 1.0
    assert served_by(client, route) == "b" and len(alpha.stats.requests) == 4

    alpha.behaviour.status = 200  # healed
    time.sleep(max(0.0, reopened_at + 1.05 - time.monotonic()))
    assert served_by(client, route) == "a"  # one trial succeeds and closes the circuit
    assert breaker_state(gateway, route, "a") == 0.0
    assert [served_by(client, route) for _ in range(5)] == ["a"] * 5
    assert len(alpha.stats.requests) == 10


def test_half_open_lets_exactly_one_trial_through_concurrent_traffic(gateway, upstreams, key, client):
    alpha = upstreams["alpha"]
    alpha.behaviour.status = 500
    route = gateway.put_route(
        variants=[variant("a", alpha), variant("b", upstreams["beta"], weight=0)], fallbacks=["b"]
    )
    for _ in range(3):
        assert served_by(client, route) == "b"
    opened_at = time.monotonic()
    alpha.behaviour.status, alpha.behaviour.delay_s = 200, 0.5  # healed, but slow: the trial stays in flight
    time.sleep(max(0.0, opened_at + 1.05 - time.monotonic()))
    responses = burst(gateway, key, route, 8)
    assert all(r.status_code == 200 for r in responses)
    assert Counter(r.headers["x-llmops-variant"] for r in responses) == {"a": 1, "b": 7}
    assert len(alpha.stats.requests) == 4
    assert breaker_state(gateway, route, "a") == 0.0
