"""Caps on max_tokens per key and per route, through a real gateway: the upstream gets the
tighter cap instead of more (or of nothing), the client sees it in a header, and budgets reserve the capped
worst case."""

import time

import pytest

from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.spend import assert_error, set_price, unique

pytestmark = postgres_only  # caps applied on the proxy path, not the store


@pytest.fixture(scope="module")
def gw(make_gateway, sql_url):
    return make_gateway(sql_url=sql_url, GATEWAY_ROUTE_CACHE_TTL_S="0.2")


def send(gw, key: str, route: str, **extra):
    with gw.client(key) as client:
        response = client.post("/v1/chat/completions", json=chat_body(route, **extra))
    assert response.status_code == 200, response.text
    return response


def test_key_cap_lowers_or_sets_max_tokens(gw, upstreams):
    alpha = upstreams["alpha"]
    route = gw.put_route(variants=[variant("a", alpha)])
    _, key = gw.create_key(limits={"max_tokens": 3})
    unasked = send(gw, key, route)
    over = send(gw, key, route, max_tokens=100, max_completion_tokens=50)
    under = send(gw, key, route, max_tokens=2)
    sent = alpha.stats.requests
    assert [r.get("max_tokens") for r in sent] == [3, 3, 2]
    assert sent[1]["max_completion_tokens"] == 3 and "max_completion_tokens" not in sent[0]
    assert unasked.headers["x-llmops-max-tokens-capped"] == "3" and over.headers["x-llmops-max-tokens-capped"] == "3"
    assert "x-llmops-max-tokens-capped" not in under.headers
    assert over.json()["usage"]["completion_tokens"] == 3


def test_tighter_of_key_and_route_caps_applies(gw, upstreams):
    alpha = upstreams["alpha"]
    route = gw.put_route(variants=[variant("a", alpha)], limits={"max_tokens": 2})
    _, loose = gw.create_key(limits={"max_tokens": 4})
    _, free = gw.create_key()
    send(gw, loose, route, max_tokens=10)
    send(gw, free, route, max_tokens=10)
    assert [r["max_tokens"] for r in alpha.stats.requests] == [2, 2]


def test_budget_reserves_the_capped_worst_case(gw, upstreams):
    """Without the cap the default reservation (512 tokens) would not fit this budget; with it, it does."""
    name = unique("v")
    set_price(gw, name, input="0", output="1")
    time.sleep(0.3)  # the price reaches the gateway's price cache
    route = gw.put_route(variants=[variant(name, upstreams["alpha"])])
    _, capped = gw.create_key(limits={"max_tokens": 5}, budget={"monthly": "0.000005"})
    _, uncapped = gw.create_key(budget={"monthly": "0.000005"})
    assert send(gw, capped, route).json()["usage"]["completion_tokens"] == 5
    with gw.client(uncapped) as client:
        assert_error(client.post("/v1/chat/completions", json=chat_body(route)), 429, "budget_exceeded")


def test_bad_caps_are_422(gw):
    with gw.admin() as admin:
        assert_error(admin.post("/admin/keys", json={"name": "k", "limits": {"max_tokens": 0}}), 422)
        assert_error(admin.put("/admin/routes/r", json={"variants": [], "limits": {"max_tokens": -1}}), 422)
