"""Budgets in currency through two real gateway replicas sharing Redis and SQL (both SQL backends where a test
checks what reached SQL; PostgreSQL only where it checks Redis's counters and the answers alone).

A budget is reserved before a request (its worst case: prompt estimate and max_tokens at the dearest variant it
may reach) in the same atomic Redis script as the token limits, and reconciled with the real cost after. So the
number admitted is exactly what a budget buys, whatever replica a request lands on; no reservation is left
behind by errors or disconnects (the Redis counter ends equal to the spend recorded in SQL).

Prices here are chosen so the worst case equals the real cost where a test counts admissions (output priced,
max_tokens = the fake upstream's 5 completion tokens), and differs where a test checks reconciliation.
"""

import asyncio
import json
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.spend import assert_error, cost_nanos, create_team, set_price, unique, wait_spend

PER_TOKEN = 1000  # nano-units: 1 per million tokens
ANSWER = 5  # the fake upstream's completion tokens


PRICE_TTL_S = 0.2  # the price (and route) cache of each replica


@pytest.fixture(scope="module")
def pair(make_gateway, sql_url):
    return make_gateway(
        sql_url=sql_url,
        replicas=2,
        GATEWAY_SPEND_FLUSH_INTERVAL_S="0.05",
        GATEWAY_ROUTE_CACHE_TTL_S=str(PRICE_TTL_S),
    )


def priced_route(gw, upstream, *, input: str = "0", output: str = "1") -> str:
    name = unique("v")
    set_price(gw, name, input=input, output=output)
    time.sleep(PRICE_TTL_S + 0.05)  # a new price reaches the other replica within its price cache's TTL
    return gw.put_route(variants=[variant(name, upstream)])


def nanos(amount: int) -> str:
    """A budget of ``amount`` nano-units, as the API takes it (currency units, to the micro-unit)."""
    assert amount % 1000 == 0
    return f"{amount / 10**9:.6f}"


def budget_counter(rds, gw, owner: str, period: str = "cost_month") -> int:
    """A key's (``key_…``) or team's budget counter, summed over its windows."""
    prefix = gw.env["GATEWAY_REDIS_KEY_PREFIX"]
    base = f"{prefix}{{{owner}}}" if owner.startswith("key_") else f"{prefix}{{team:{owner}}}"
    return sum(int(rds.get(k) or 0) for k in rds.scan_iter(match=f"{base}:{period}:*"))


def settle(rds, gw, owner: str, expected: int, period: str = "cost_month", timeout_s: float = 5.0) -> int:
    deadline = time.monotonic() + timeout_s
    while (value := budget_counter(rds, gw, owner, period)) != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return value


async def _burst(gw, keys_by_replica: list[tuple[int, str]], route: str, total: int, **extra) -> list[httpx.Response]:
    clients = [
        httpx.AsyncClient(
            base_url=gw.replicas[replica].url,
            headers={"authorization": f"Bearer {key}"},
            timeout=60,
            limits=httpx.Limits(max_connections=total),
        )
        for replica, key in keys_by_replica
    ]
    try:
        return await asyncio.gather(
            *(
                clients[i % len(clients)].post("/v1/chat/completions", json=chat_body(route, **extra))
                for i in range(total)
            )
        )
    finally:
        for client in clients:
            await client.aclose()


def test_key_budget_admits_exactly_what_it_buys_across_two_replicas(pair, upstreams, rds):
    route = priced_route(pair, upstreams["alpha"])
    per_request = ANSWER * PER_TOKEN
    key_id, key = pair.create_key(budget={"monthly": nanos(37 * per_request)})
    responses = asyncio.run(_burst(pair, [(0, key), (1, key)], route, 200, max_tokens=ANSWER))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 37 and statuses.count(429) == 163, sorted(set(statuses))
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 429} == {"budget_exceeded"}
    assert len(upstreams["alpha"].stats.requests) == 37
    assert settle(rds, pair, key_id, 37 * per_request) == 37 * per_request
    report = wait_spend(pair, 37, key=key_id)
    assert report["total"]["requests"] == 37 and cost_nanos(report["total"]) == 37 * per_request


def test_team_budget_bounds_all_its_keys_together_across_replicas(pair, upstreams, rds):
    route = priced_route(pair, upstreams["alpha"])
    per_request = ANSWER * PER_TOKEN
    team = create_team(pair, budget={"monthly": nanos(20 * per_request)})
    key_a, secret_a = pair.create_key(team=team)
    key_b, secret_b = pair.create_key(team=team, budget={"monthly": "1"})  # its own budget is not the bound
    responses = asyncio.run(_burst(pair, [(0, secret_a), (1, secret_b)], route, 100, max_tokens=ANSWER))
    assert [r.status_code for r in responses].count(200) == 20
    refusal = next(r for r in responses if r.status_code == 429).json()["error"]
    assert refusal["code"] == "budget_exceeded" and "team" in refusal["message"]
    assert settle(rds, pair, team, 20 * per_request) == 20 * per_request
    assert cost_nanos(wait_spend(pair, 20, team=team)["total"]) == 20 * per_request
    # Only key b has a budget of its own: its counter holds its share (every odd request of the burst was b's), key
    # a has none.
    b_admitted = [r.status_code for r in responses[1::2]].count(200)
    b_report = wait_spend(pair, b_admitted, key=key_b)["total"]
    assert b_report["requests"] == b_admitted
    assert budget_counter(rds, pair, key_b) == cost_nanos(b_report) and budget_counter(rds, pair, key_a) == 0


@postgres_only  # the reservations reconciled in Redis, not SQL
def test_reconciled_reservations_cause_no_phantom_refusals(pair, upstreams, rds):
    """Each request reserves max_tokens (50) but costs 5 tokens: once reconciled, the budget is spent exactly as
    far as a next worst case still fits, and not one request earlier."""
    route = priced_route(pair, upstreams["alpha"])
    worst, actual = 50 * PER_TOKEN, ANSWER * PER_TOKEN
    budget = worst + 9 * actual  # the 10th request still fits its worst case; the 11th does not
    key_id, key = pair.create_key(budget={"monthly": nanos(budget)})
    statuses = []
    for i in range(12):
        with pair.client(key, replica=i % 2) as client:
            statuses.append(client.post("/v1/chat/completions", json=chat_body(route, max_tokens=50)).status_code)
        admitted = statuses.count(200)
        assert settle(rds, pair, key_id, admitted * actual) == admitted * actual
    assert statuses == [200] * 10 + [429, 429]


def test_streamed_answer_is_reconciled_in_currency(pair, upstreams, rds):
    route = priced_route(pair, upstreams["alpha"], input="2", output="10")
    key_id, key = pair.create_key(budget={"monthly": "1"})
    body = chat_body(route, stream=True, max_tokens=400)
    with pair.client(key, replica=1) as client, client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200 and "[DONE]" in response.read().decode()
    real = 11 * 2000 + ANSWER * 10_000
    assert settle(rds, pair, key_id, real) == real
    assert cost_nanos(wait_spend(pair, 1, key=key_id)["total"]) == real


def test_errors_and_disconnects_leave_no_reservation_behind(pair, upstreams, rds):
    """Whatever ends a request, the budget counter ends equal to the spend recorded for it."""
    alpha = upstreams["alpha"]
    route = priced_route(pair, alpha, input="2", output="10")
    key_id, key = pair.create_key(budget={"monthly": "1"})
    alpha.behaviour.status = 500  # upstream error: nothing was served, nothing is charged
    with pair.client(key) as client:
        assert client.post("/v1/chat/completions", json=chat_body(route, max_tokens=300)).status_code == 502
    alpha.behaviour.status = 200
    assert settle(rds, pair, key_id, 0) == 0
    # A stream the client leaves after its first chunk.
    alpha.behaviour.chunks, alpha.behaviour.chunk_delay_s = 50, 0.05
    body = chat_body(route, stream=True, max_tokens=300)
    with pair.client(key, replica=1) as client, client.stream("POST", "/v1/chat/completions", json=body) as response:
        next(response.iter_bytes())
    # A client that gives up before the answer starts.
    alpha.behaviour.delay_s = 2.0
    with pair.client(key) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", json=chat_body(route, max_tokens=300), timeout=0.3)
    report = wait_spend(pair, 3, key=key_id)
    charged = cost_nanos(report["total"])
    assert 0 < charged < 2 * 300 * 10_000  # far under the two worst cases reserved
    assert settle(rds, pair, key_id, charged) == charged


@postgres_only  # Redis's reservation and the answer's headers, not SQL
def test_refusal_says_budget_exceeded_and_when_it_resets(pair, upstreams, rds):
    route = priced_route(pair, upstreams["alpha"])
    seconds, _ = rds.time()
    if 86_400 - seconds % 86_400 < 5:  # a UTC day ends within the test: wait for the next one
        time.sleep(86_400 - seconds % 86_400 + 0.1)
    _, key = pair.create_key(budget={"daily": nanos(ANSWER * PER_TOKEN)})
    with pair.client(key) as client:
        assert client.post("/v1/chat/completions", json=chat_body(route, max_tokens=ANSWER)).status_code == 200
        refused = client.post("/v1/chat/completions", json=chat_body(route, max_tokens=ANSWER))
    error = assert_error(refused, 429, "budget_exceeded")
    assert error["type"] == "rate_limit_error" and "daily" in error["message"]
    now = datetime.fromtimestamp(rds.time()[0], UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC).timestamp() + 86_400
    assert datetime.fromisoformat(refused.headers["x-llmops-budget-reset"]).timestamp() == midnight
    assert abs(int(refused.headers["retry-after"]) - (midnight - now.timestamp())) <= 2


@postgres_only  # Redis's reservation and the answer's headers, not SQL
def test_monthly_refusal_resets_at_the_next_calendar_month(pair, upstreams, rds):
    route = priced_route(pair, upstreams["alpha"])
    team = create_team(pair, budget={"monthly": nanos(ANSWER * PER_TOKEN)})
    _, key = pair.create_key(team=team)
    with pair.client(key) as client:
        client.post("/v1/chat/completions", json=chat_body(route, max_tokens=ANSWER))
        refused = client.post("/v1/chat/completions", json=chat_body(route, max_tokens=ANSWER))
    assert_error(refused, 429, "budget_exceeded")
    now = datetime.fromtimestamp(rds.time()[0], UTC)
    following = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    assert datetime.fromisoformat(refused.headers["x-llmops-budget-reset"]) == following


@postgres_only  # Redis's reservation and the answer's headers, not SQL
def test_a_request_whose_worst_case_exceeds_the_whole_budget_says_lower_max_tokens(pair, upstreams, rds):
    route = priced_route(pair, upstreams["alpha"])
    key_id, key = pair.create_key(budget={"monthly": nanos(10 * PER_TOKEN)})
    with pair.client(key) as client:
        refused = client.post("/v1/chat/completions", json=chat_body(route, max_tokens=11))
        admitted = client.post("/v1/chat/completions", json=chat_body(route, max_tokens=10))
    assert "max_tokens" in assert_error(refused, 429, "budget_exceeded")["message"]
    assert "retry-after" not in refused.headers  # waiting never helps this request
    assert admitted.status_code == 200
    assert budget_counter(rds, pair, key_id) <= 10 * PER_TOKEN


@postgres_only  # Redis's reservation and the answer's headers, not SQL
def test_dearest_reachable_variant_sets_the_worst_case(pair, upstreams, rds):
    """Before a variant is chosen the reservation assumes the dearest one (fallbacks included); the real
    variant's price replaces it after."""
    cheap, dear = unique("cheap"), unique("dear")
    set_price(pair, cheap, input="0", output="1")
    set_price(pair, dear, input="0", output="100")
    time.sleep(PRICE_TTL_S + 0.05)
    route = pair.put_route(variants=[variant(cheap, upstreams["alpha"])], fallbacks=[variant(dear, upstreams["beta"])])
    key_id, key = pair.create_key(budget={"monthly": nanos(ANSWER * 100 * PER_TOKEN)})
    with pair.client(key) as client:
        assert client.post("/v1/chat/completions", json=chat_body(route, max_tokens=ANSWER)).status_code == 200
    assert settle(rds, pair, key_id, ANSWER * PER_TOKEN) == ANSWER * PER_TOKEN
    with pair.client(key) as client:  # what is left no longer covers the dear fallback's worst case
        refused = client.post("/v1/chat/completions", json=chat_body(route, max_tokens=ANSWER))
    assert_error(refused, 429, "budget_exceeded")


@postgres_only  # Redis's reservation and the answer's headers, not SQL
def test_budget_use_is_exported_for_the_alert_rule(pair, upstreams, rds):
    route = priced_route(pair, upstreams["alpha"])
    team = create_team(pair, budget={"monthly": nanos(4 * ANSWER * PER_TOKEN)})
    _, key = pair.create_key(team=team)
    with pair.client(key) as client:
        for _ in range(3):
            assert client.post("/v1/chat/completions", json=chat_body(route, max_tokens=ANSWER)).status_code == 200
    samples = [
        s.value
        for family in text_string_to_metric_families(httpx.get(f"{pair.url}/metrics").text)
        for s in family.samples
        if s.name == "llmops_gateway_budget_used_ratio"
        and s.labels == {"scope": "team", "owner": team, "period": "month"}
    ]
    assert samples == [pytest.approx(0.75)]


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        _Webhook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()


@pytest.fixture(scope="module")
def webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Webhook.received = []
    yield f"http://127.0.0.1:{server.server_port}/hooks/budget", _Webhook.received
    server.shutdown()
    server.server_close()


def test_budget_alert_webhook_fires_once_per_budget_and_period_across_replicas(
    make_gateway, postgres_database_url, webhook, upstreams, rds
):
    url, received = webhook
    gw = make_gateway(
        sql_url=postgres_database_url,
        replicas=2,
        GATEWAY_BUDGET_ALERT_SHARE="0.5",
        GATEWAY_BUDGET_ALERT_WEBHOOK_URL=url,
        GATEWAY_ROUTE_CACHE_TTL_S=str(PRICE_TTL_S),
    )
    route = priced_route(gw, upstreams["alpha"])
    team = create_team(gw, budget={"monthly": nanos(10 * ANSWER * PER_TOKEN)})
    _, key = gw.create_key(team=team)
    for i in range(4):  # 40%: no alert yet
        with gw.client(key, replica=i % 2) as client:
            assert client.post("/v1/chat/completions", json=chat_body(route, max_tokens=ANSWER)).status_code == 200
    assert received == []
    responses = asyncio.run(_burst(gw, [(0, key), (1, key)], route, 12, max_tokens=ANSWER))
    assert [r.status_code for r in responses].count(200) == 6
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # room for a duplicate from the other replica to arrive, if one were sent
    assert len(received) == 1, received
    alert = received[0]
    assert (alert["scope"], alert["owner"], alert["period"], alert["currency"]) == ("team", team, "month", "USD")
    assert alert["share"] >= 0.5 and Decimal(alert["budget"]) == Decimal(nanos(10 * ANSWER * PER_TOKEN))
