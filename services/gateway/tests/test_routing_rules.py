"""Cost-aware routing rules through a real gateway: matched in order before the weighted
split (team, key tier, header, prompt length, max_tokens), the rule that fired in a response header and the request log
(with the request's team and cost), fallbacks after a rule's variant, and rules naming a missing variant refused
when saved."""

import time

import orjson
import pytest

from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.spend import assert_error, create_team, set_price, unique

pytestmark = postgres_only  # rules matched on the proxy path, not the store


@pytest.fixture(scope="module")
def gw(make_gateway, sql_url):
    return make_gateway(sql_url=sql_url, GATEWAY_ROUTE_CACHE_TTL_S="0.2")


@pytest.fixture
def routed(gw, upstreams):
    """A route whose traffic goes to 'big' unless a rule sends it to 'small' (weight 0) or 'long'."""
    team = create_team(gw)
    small = unique("small")
    set_price(gw, small, input="0.1", output="0.2")
    time.sleep(0.3)  # the price reaches the gateway's price cache
    route = gw.put_route(
        variants=[
            variant("big", upstreams["alpha"]),
            variant(small, upstreams["beta"], weight=0),
            variant("long", upstreams["gamma"], weight=0),
        ],
        fallbacks=["big"],
        rules=[
            {"name": "team-to-small", "match": {"teams": [team]}, "variant": small},
            {"name": "free-tier", "match": {"tiers": ["free"]}, "variant": small},
            {"name": "batch-header", "match": {"headers": {"X-LLMOps-Tier": "batch"}}, "variant": small},
            {"name": "long-prompts", "match": {"min_prompt_tokens": 200}, "variant": "long"},
            {"name": "short-answers", "match": {"max_max_tokens": 8}, "variant": small},
        ],
    )
    return route, team, small


def ask(gw, key: str, route: str, headers: dict | None = None, **extra):
    with gw.client(key) as client:
        response = client.post("/v1/chat/completions", json=chat_body(route, **extra), headers=headers or {})
    assert response.status_code == 200, response.text
    return response


def served(response) -> tuple[str, str | None]:
    return response.headers["x-llmops-variant"], response.headers.get("x-llmops-rule")


def test_rules_fire_in_order_before_the_split(gw, routed):
    route, team, small = routed
    _, member = gw.create_key(team=team)
    _, other = gw.create_key()
    assert served(ask(gw, other, route, max_tokens=100)) == ("big", None)
    assert served(ask(gw, member, route, max_tokens=100)) == (small, "team-to-small")
    tier = {"x-llmops-tier": "batch"}
    assert served(ask(gw, other, route, headers=tier, max_tokens=100)) == (small, "batch-header")
    long_prompt = "word " * 400
    assert served(ask(gw, other, route, content=long_prompt, max_tokens=100)) == ("long", "long-prompts")
    assert served(ask(gw, other, route, max_tokens=8)) == (small, "short-answers")
    _, free = gw.create_key(tier="free")
    assert served(ask(gw, free, route, max_tokens=100)) == (small, "free-tier")
    # The first match wins: a team member's long prompt still goes by the team rule.
    assert served(ask(gw, member, route, content=long_prompt, max_tokens=100)) == (small, "team-to-small")
    # Without max_tokens the default reservation (512) is what the bounds see: not a short answer.
    assert served(ask(gw, other, route)) == ("big", None)


def test_the_rule_team_and_cost_are_in_the_request_log(gw, routed):
    route, team, small = routed
    key_id, member = gw.create_key(team=team)
    request_id = ask(gw, member, route, max_tokens=100).headers["x-request-id"]
    deadline, record = time.monotonic() + 5, None
    while record is None and time.monotonic() < deadline:
        lines = gw.request_log_path.read_bytes().splitlines() if gw.request_log_path.exists() else []
        record = next((r for r in map(orjson.loads, lines) if r["request_id"] == request_id), None)
        time.sleep(0.05)
    assert record is not None
    assert (record["rule"], record["team"], record["variant"], record["key_id"]) == (
        "team-to-small",
        team,
        small,
        key_id,
    )
    assert record["cost_nanos"] == 11 * 100 + 5 * 200


def test_a_failing_rule_variant_falls_back(gw, routed, upstreams):
    route, team, _ = routed
    _, member = gw.create_key(team=team)
    upstreams["beta"].behaviour.status = 500
    response = ask(gw, member, route, max_tokens=100)
    assert served(response) == ("big", "team-to-small")


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        ([{"name": "r", "match": {"teams": ["t"]}, "variant": "missing"}], "names no variant"),
        ([{"name": "r", "match": {}, "variant": "a"}], "at least one condition"),
        ([{"name": "r", "match": {"teams": ["t"]}, "variant": "a"}] * 2, "unique"),
        ([{"name": "r", "match": {"min_prompt_tokens": -1}, "variant": "a"}], "greater than or equal"),
    ],
)
def test_bad_rules_are_refused_when_saved(gw, upstreams, rules, says):
    spec = {"variants": [variant("a", upstreams["alpha"])], "rules": rules}
    with gw.admin() as admin:
        error = assert_error(admin.put(f"/admin/routes/{unique('r')}", json=spec), 422)
    assert says in error["message"]
