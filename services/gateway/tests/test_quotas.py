"""Quotas and budgets through a real gateway on real Redis: limits, reservation, reconciliation, Redis down.

Windows are fixed and aligned to Redis's clock (a minute for rpm/tpm): tests that count requests first make
sure the current minute has enough time left, so a window edge cannot reset a counter halfway through.
"""

import asyncio
import threading
import time

import httpx
import pytest

from llmops_gateway.proxy.schemas import ChatCompletionRequest
from llmops_gateway.proxy.tokens import estimate_prompt_tokens
from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.processes import free_port, start_together

pytestmark = postgres_only  # quota counters live in Redis, not in the SQL store

USAGE = 16  # the fake upstream's answer: 11 prompt + 5 completion tokens


@pytest.fixture
def route(gateway, upstreams):
    return gateway.put_route(variants=[variant("a", upstreams["alpha"])])


def fresh_window(rds, need_s: float, window_s: int = 60) -> None:
    """Waits for the next window only if the current one ends within ``need_s`` (on Redis's clock)."""
    seconds, micros = rds.time()
    left = window_s - (seconds % window_s + micros / 1e6)
    if left < need_s:
        time.sleep(left + 0.05)


def counter(rds, gateway, key_id: str, kind: str) -> int:
    """The key's own token counter (all windows summed; the route-scope counters are named ``…:r:…``)."""
    prefix = gateway.env["GATEWAY_REDIS_KEY_PREFIX"]
    return sum(int(rds.get(k) or 0) for k in rds.scan_iter(match=f"{prefix}{{{key_id}}}:{kind}:*"))


def wait_counter(rds, gateway, key_id: str, kind: str, until, timeout_s: float = 3.0) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        value = counter(rds, gateway, key_id, kind)
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


def estimate(body: dict) -> int:
    return estimate_prompt_tokens(ChatCompletionRequest.model_validate(body))


def assert_refused(response: httpx.Response, code: str) -> dict:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == code and error["message"]
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    return error


# --- requests per minute ---


def test_rpm_allows_exactly_the_limit_then_429(gateway, upstreams, route, rds):
    _, key = gateway.create_key(limits={"rpm": 5})
    fresh_window(rds, 5)
    with gateway.client(key) as client:
        responses = [client.post("/v1/chat/completions", json=chat_body(route)) for _ in range(6)]
    assert [r.status_code for r in responses[:5]] == [200] * 5
    assert [r.headers["x-ratelimit-limit-requests"] for r in responses[:5]] == ["5"] * 5
    assert [r.headers["x-ratelimit-remaining-requests"] for r in responses[:5]] == ["4", "3", "2", "1", "0"]
    refused = responses[5]
    assert_refused(refused, "rpm_limit_exceeded")
    assert int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-limit-requests"] == "5"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert len(upstreams["alpha"].stats.requests) == 5


def test_quota_scripts_are_reloaded_after_redis_forgets_them(gateway, upstreams, route, rds):
    """A Redis restarted without persistence (as we run it) has no scripts: counting goes on regardless."""
    fresh_window(rds, 5)
    _, key = gateway.create_key(limits={"rpm": 10})
    with gateway.client(key) as client:
        assert client.post("/v1/chat/completions", json=chat_body(route)).status_code == 200
        rds.script_flush()
        response = client.post("/v1/chat/completions", json=chat_body(route))
    assert response.status_code == 200 and response.headers["x-ratelimit-remaining-requests"] == "8"


def test_rpm_is_exact_under_concurrency(gateway, upstreams, route, rds):
    _, key = gateway.create_key(limits={"rpm": 20})

    async def burst() -> list[int]:
        async with httpx.AsyncClient(
            base_url=gateway.url,
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
            limits=httpx.Limits(max_connections=60),
        ) as client:
            responses = await asyncio.gather(
                *(client.post("/v1/chat/completions", json=chat_body(route)) for _ in range(60))
            )
        return [r.status_code for r in responses]

    fresh_window(rds, 10)
    statuses = asyncio.run(burst())
    assert statuses.count(200) == 20 and statuses.count(429) == 40, statuses
    assert len(upstreams["alpha"].stats.requests) == 20


# --- token reservation and reconciliation ---


def test_tokens_are_reserved_up_front_then_reconciled_to_real_usage(gateway, upstreams, route, rds):
    key_id, key = gateway.create_key(limits={"tpm": 100_000, "tpd": 1_000_000})
    body = chat_body(route, max_tokens=300)
    reserved = estimate(body) + 300
    upstreams["alpha"].behaviour.delay_s = 0.5  # keeps the request in flight while we look
    result = {}
    with gateway.client(key) as client:
        thread = threading.Thread(target=lambda: result.update(r=client.post("/v1/chat/completions", json=body)))
        thread.start()
        in_flight = wait_counter(rds, gateway, key_id, "tpm", lambda v: v > 0)
        assert "r" not in result
        assert in_flight == reserved and counter(rds, gateway, key_id, "tpd") == reserved
        thread.join()
    response = result["r"]
    assert response.status_code == 200 and response.json()["usage"]["total_tokens"] == USAGE
    assert response.headers["x-ratelimit-remaining-tokens"] == str(100_000 - reserved)
    assert wait_counter(rds, gateway, key_id, "tpm", lambda v: v == USAGE) == USAGE
    assert counter(rds, gateway, key_id, "tpd") == USAGE


def test_streamed_response_is_reconciled_from_the_usage_chunk(gateway, upstreams, route, rds):
    key_id, key = gateway.create_key(limits={"tpm": 100_000})
    body = chat_body(route, stream=True, max_tokens=300)
    with gateway.client(key) as client, client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["x-ratelimit-limit-tokens"] == "100000"
        r.read()
    assert wait_counter(rds, gateway, key_id, "tpm", lambda v: v == USAGE) == USAGE


def abandon_stream(gateway, upstreams, route, rds, *, content: str) -> tuple[str, int, int]:
    """Reads 3 content chunks of a long, slow stream and leaves. Returns (key id, reservation, settled counter)."""
    upstreams["alpha"].behaviour.chunks = 100
    upstreams["alpha"].behaviour.chunk_delay_s = 0.2
    key_id, key = gateway.create_key(limits={"tpm": 1_000_000})
    body = chat_body(route, content=content, stream=True, max_tokens=1000)
    reserved = estimate(body) + 1000
    with gateway.client(key) as client, client.stream("POST", "/v1/chat/completions", json=body) as response:
        received = 0
        for line in response.iter_lines():
            received += '"content"' in line
            if received == 3:
                break
    settled = wait_counter(rds, gateway, key_id, "tpm", lambda v: 0 < v != reserved)
    # The gateway settles as it closes the upstream connection; the upstream notices a moment later.
    deadline = time.monotonic() + 5
    while upstreams["alpha"].stats.streams_cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstreams["alpha"].stats.streams_cancelled == 1 and upstreams["alpha"].stats.streams_finished == 0
    return key_id, reserved, settled


def test_abandoned_stream_is_charged_what_was_streamed_not_max_tokens(gateway, upstreams, route, rds):
    _, reserved, settled = abandon_stream(gateway, upstreams, route, rds, content="hello")
    # 3 (or, racing the disconnect, 4) completion chunks left the gateway; the prompt estimate is 9.
    assert 3 <= settled <= estimate(chat_body(route)) + 4 < reserved


def test_abandoned_stream_still_pays_for_its_prompt(gateway, upstreams, route, rds):
    """The upstream read the whole prompt before it streamed anything: leaving early must not refund it,
    or a client could send huge prompts for the price of a few tokens each."""
    content = "lorem ipsum " * 1000
    _, reserved, settled = abandon_stream(gateway, upstreams, route, rds, content=content)
    prompt = estimate(chat_body(route, content=content))
    assert prompt + 3 <= settled <= prompt + 4, (settled, prompt, reserved)


def test_daily_budget_refuses_with_tpd_code(gateway, upstreams, route, rds):
    body = chat_body(route, max_tokens=10)
    reservation = estimate(body) + 10
    # Room for 3 requests once each is reconciled to its real 16 tokens, not for a 4th (nor for 3 unreconciled).
    key_id, key = gateway.create_key(limits={"tpd": 3 * USAGE + reservation - 1})
    with gateway.client(key) as client:
        for i in range(1, 4):
            assert client.post("/v1/chat/completions", json=body).status_code == 200
            assert wait_counter(rds, gateway, key_id, "tpd", lambda v, i=i: v == i * USAGE) == i * USAGE
        refused = client.post("/v1/chat/completions", json=body)
    assert_refused(refused, "tpd_limit_exceeded")
    assert refused.headers["x-ratelimit-remaining-tokens-day"] == "0"
    assert len(upstreams["alpha"].stats.requests) == 3


def test_reservation_over_the_tpm_limit_says_lower_max_tokens(gateway, upstreams, route):
    _, key = gateway.create_key(limits={"tpm": 100})
    with gateway.client(key) as client:
        refused = client.post("/v1/chat/completions", json=chat_body(route, max_tokens=500))
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "request_over_limit" and "lower max_tokens" in error["message"]
        assert "retry-after" not in refused.headers  # waiting would never help
        assert not upstreams["alpha"].stats.requests
        # The refusal counted nothing: a request that fits still passes.
        assert client.post("/v1/chat/completions", json=chat_body(route, max_tokens=20)).status_code == 200


def test_route_limits_apply_per_key_on_top_of_the_keys_own(gateway, upstreams, rds):
    limited = gateway.put_route(variants=[variant("a", upstreams["alpha"])], limits={"rpm": 2})
    free = gateway.put_route(variants=[variant("b", upstreams["beta"])])
    _, first = gateway.create_key(limits={"rpm": 3})
    _, second = gateway.create_key()
    fresh_window(rds, 5)
    with gateway.client(first) as client:
        assert [client.post("/v1/chat/completions", json=chat_body(limited)).status_code for _ in range(2)] == [200] * 2
        refused = client.post("/v1/chat/completions", json=chat_body(limited))
        assert "route" in assert_refused(refused, "rpm_limit_exceeded")["message"]
        # The route refusal did not use up the key's own rpm: 2 of 3 are spent, one more is allowed elsewhere.
        assert client.post("/v1/chat/completions", json=chat_body(free)).status_code == 200
        refused = client.post("/v1/chat/completions", json=chat_body(free))
        assert "key" in assert_refused(refused, "rpm_limit_exceeded")["message"]
    with gateway.client(second) as client:  # another key has its own 2 on the limited route
        statuses = [client.post("/v1/chat/completions", json=chat_body(limited)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


# --- Redis unreachable ---


@pytest.fixture(scope="module")
def redisless(make_gateway, sql_url):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    gateways = {
        "closed": make_gateway(sql_url=sql_url, GATEWAY_REDIS_URL=dead, start=False),  # the default mode
        "open": make_gateway(sql_url=sql_url, GATEWAY_REDIS_URL=dead, GATEWAY_QUOTA_FAILURE_MODE="open", start=False),
    }
    start_together(*gateways.values())
    return gateways


def test_redis_down_fails_closed_by_default(redisless, upstreams):
    gateway = redisless["closed"]
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    _, limited = gateway.create_key(limits={"rpm": 100})
    _, unlimited = gateway.create_key()
    errors = {"mode": "closed"}
    before = gateway.metric("llmops_gateway_quota_store_errors_total", errors)
    with gateway.client(limited) as client:
        refused = client.post("/v1/chat/completions", json=chat_body(route))
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "quota_store_unavailable"
    with gateway.client(unlimited) as client:
        assert client.post("/v1/chat/completions", json=chat_body(route)).status_code == 200
    assert len(upstreams["alpha"].stats.requests) == 1
    assert gateway.metric("llmops_gateway_quota_store_errors_total", errors) == before + 1
    ready = httpx.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["database"] == "ok" and ready.json()["checks"]["redis"] != "ok"


def test_redis_down_fail_open_serves_unmetered(redisless, upstreams):
    gateway = redisless["open"]
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    _, limited = gateway.create_key(limits={"rpm": 1})
    errors = {"mode": "open"}
    before = gateway.metric("llmops_gateway_quota_store_errors_total", errors)
    with gateway.client(limited) as client:
        statuses = [client.post("/v1/chat/completions", json=chat_body(route)).status_code for _ in range(2)]
    assert statuses == [200, 200]  # unmetered: rpm 1 cannot be enforced without Redis
    assert gateway.metric("llmops_gateway_quota_store_errors_total", errors) == before + 2
