"""Teams, versioned prices and spend through a real gateway on both SQL backends: every request is charged at its
variant's price (cached prompt tokens apart), summed per hour in SQL, reported whole or grouped."""

import asyncio
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.spend import assert_error, cost_nanos, create_team, set_price, spend, unique, wait_spend

USAGE = (11, 5)  # the fake upstream's prompt and completion tokens


@pytest.fixture(scope="module")
def gw(make_gateway, sql_url):
    return make_gateway(sql_url=sql_url, GATEWAY_SPEND_FLUSH_INTERVAL_S="0.05")


def priced_route(gw, upstream, *, input: str, output: str, cached: str | None = None) -> tuple[str, str]:
    name = unique("v")
    set_price(gw, name, input=input, output=output, cached=cached)
    return gw.put_route(variants=[variant(name, upstream)]), name


def chat(gw, key: str, route: str, **extra) -> httpx.Response:
    with gw.client(key) as client:
        response = client.post("/v1/chat/completions", json=chat_body(route, **extra))
    assert response.status_code == 200, response.text
    return response


async def _spend_rows(sql_url: str, key_id: str) -> list[dict]:
    engine = create_async_engine(sql_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT * FROM spend WHERE key_id = :k"), {"k": key_id})
            return [dict(r._mapping) for r in rows]
    finally:
        await engine.dispose()


def test_teams_own_keys(gw):
    team = create_team(gw, description="search squad", budget={"monthly": "250.5"})
    key_id, _ = gw.create_key(team=team)
    with gw.admin() as admin:
        shown = admin.get(f"/admin/teams/{team}").json()
        listed = admin.get("/admin/teams").json()["data"]
        key = admin.get(f"/admin/keys/{key_id}").json()
        assert_error(admin.post("/admin/teams", json={"name": team}), 409, "team_exists")
        assert_error(admin.get("/admin/teams/nobody"), 404, "team_not_found")
        moved = admin.patch(f"/admin/keys/{key_id}", json={"team": None}).json()
    assert shown["keys"] == 1 and shown["budget"] == {"daily": None, "monthly": "250.5"}
    assert team in {t["name"] for t in listed}
    assert key["team"] == team and moved["team"] is None


def test_a_key_given_or_moved_to_an_unknown_team_is_409(gw):
    """409, not 404: on PATCH /admin/keys/{key_id} a 404 read as the key missing (the stateful fuzzing found it)."""
    with gw.admin() as admin:
        assert_error(admin.post("/admin/keys", json={"name": "k", "team": "no-such-team"}), 409, "team_not_found")
        key_id, _ = gw.create_key()
        assert_error(admin.patch(f"/admin/keys/{key_id}", json={"team": "no-such-team"}), 409, "team_not_found")
        assert admin.get(f"/admin/keys/{key_id}").json()["team"] is None


@pytest.mark.parametrize(
    "price",
    [
        {"input_per_mtok": "-1", "output_per_mtok": "1"},
        {"input_per_mtok": "1", "output_per_mtok": "10001"},  # absurd
        {"input_per_mtok": "0.0001", "output_per_mtok": "1"},  # finer than 1/1000 per million tokens
        {"input_per_mtok": "NaN", "output_per_mtok": "1"},
        {"input_per_mtok": "1"},
        # self-hosted: a GPU hour and the throughput it serves
        {"gpu_hour_cost": "2.1"},
        {"gpu_hour_cost": "0", "tokens_per_s": "1500"},
        {"gpu_hour_cost": "-2", "tokens_per_s": "1500"},
        {"gpu_hour_cost": "2.1", "tokens_per_s": "0"},
        {"gpu_hour_cost": "2.1", "tokens_per_s": "2000000"},  # absurd throughput
        {"gpu_hour_cost": "20000", "tokens_per_s": "1500"},  # absurd cost
        {"gpu_hour_cost": "100", "tokens_per_s": "0.001"},  # derives over 10,000 per million tokens
        {"gpu_hour_cost": "2.1", "tokens_per_s": "1500", "input_per_mtok": "1", "output_per_mtok": "1"},
    ],
)
def test_bad_prices_are_422(gw, price):
    with gw.admin() as admin:
        assert_error(admin.put("/admin/prices/some-variant", json=price), 422)


@pytest.mark.parametrize("budget", [{"daily": "0"}, {"monthly": "-5"}, {"daily": "2000000"}, {"daily": "0.0000001"}])
def test_bad_budgets_are_422(gw, budget):
    with gw.admin() as admin:
        assert_error(admin.post("/admin/teams", json={"name": unique("t"), "budget": budget}), 422)
        assert_error(admin.post("/admin/keys", json={"name": "k", "budget": budget}), 422)
        key_id, _ = gw.create_key()
        assert_error(admin.patch(f"/admin/keys/{key_id}", json={"budget": budget}), 422)


def test_spend_keeps_the_price_version_it_was_charged_at(gw, upstreams, sql_url):
    route, name = priced_route(gw, upstreams["alpha"], input="2", output="10")
    key_id, key = gw.create_key()
    for _ in range(3):
        chat(gw, key, route)
    assert wait_spend(gw, 3, key=key_id)["total"]["requests"] == 3
    new = set_price(gw, name, input="4", output="20")
    with gw.admin() as admin:
        history = admin.get(f"/admin/prices/{name}").json()["data"]
        current = {p["variant"]: p for p in admin.get("/admin/prices").json()["data"]}
    assert [p["id"] for p in history] == [new["id"], history[1]["id"]] and current[name]["id"] == new["id"]
    # The gateway's price table catches up within the route cache TTL.
    deadline_requests = 0
    while True:
        chat(gw, key, route)
        deadline_requests += 1
        rows = asyncio.run(_spend_rows(sql_url, key_id))
        if any(r["price_id"] == new["id"] for r in rows) or deadline_requests > 50:
            break
    report = wait_spend(gw, 3 + deadline_requests, key=key_id)
    rows = asyncio.run(_spend_rows(sql_url, key_id))
    old_cost, new_cost = 11 * 2000 + 5 * 10_000, 11 * 4000 + 5 * 20_000  # nano-units per request
    by_price = {r["price_id"]: r for r in rows}
    assert set(by_price) == {history[1]["id"], new["id"]}
    old, fresh = by_price[history[1]["id"]], by_price[new["id"]]
    assert old["requests"] >= 3 and old["cost_nanos"] == old["requests"] * old_cost
    assert fresh["cost_nanos"] == fresh["requests"] * new_cost
    assert cost_nanos(report["total"]) == old["cost_nanos"] + fresh["cost_nanos"]


def test_a_self_hosted_price_is_derived_and_its_spend_names_how(gw, upstreams, sql_url):
    name = unique("local")
    with gw.admin() as admin:
        response = admin.put(f"/admin/prices/{name}", json={"gpu_hour_cost": "2.10", "tokens_per_s": "1500"})
    assert response.status_code == 200, response.text
    price = response.json()
    # 2.10 / (1500 * 3600) per token = 0.38888... per million, rounded up to the 1/1000 a price is kept to
    assert (price["input_per_mtok"], price["output_per_mtok"]) == ("0.389", "0.389")
    assert price["derived_from"] == {"gpu_hour_cost": "2.1", "tokens_per_s": "1500"}
    route = gw.put_route(variants=[variant(name, upstreams["alpha"])])
    key_id, key = gw.create_key()
    chat(gw, key, route)
    assert cost_nanos(wait_spend(gw, 1, key=key_id)["total"]) == sum(USAGE) * 389
    [row] = asyncio.run(_spend_rows(sql_url, key_id))
    with gw.admin() as admin:
        versions = {p["id"]: p for p in admin.get(f"/admin/prices/{name}").json()["data"]}
        audit = admin.get("/admin/audit", params={"action": "prices.set", "target": str(price["id"])}).json()
    assert versions[row["price_id"]]["derived_from"] == price["derived_from"]
    assert [entry["after"]["derived_from"] for entry in audit["data"]] == [price["derived_from"]]


def test_cached_prompt_tokens_are_priced_apart(gw, upstreams):
    route, _ = priced_route(gw, upstreams["alpha"], input="3", output="15", cached="0.5")
    upstreams["alpha"].behaviour.cached_tokens = 8
    key_id, key = gw.create_key()
    chat(gw, key, route)
    body = chat_body(route, stream=True)  # streamed: the usage chunk's details count too
    with gw.client(key) as client, client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200 and "[DONE]" in response.read().decode()
    report = wait_spend(gw, 2, key=key_id)
    assert report["total"]["cached_tokens"] == 16 and report["total"]["prompt_tokens"] == 22
    assert cost_nanos(report["total"]) == 2 * (3 * 3000 + 8 * 500 + 5 * 15_000)


def test_unpriced_variant_costs_nothing_but_is_counted(gw, upstreams):
    route = gw.put_route(variants=[variant(unique("free"), upstreams["alpha"])])
    key_id, key = gw.create_key()
    chat(gw, key, route)
    report = wait_spend(gw, 1, key=key_id)
    assert report["total"]["requests"] == 1 and cost_nanos(report["total"]) == 0
    assert report["total"]["completion_tokens"] == USAGE[1]


def test_spend_filtered_and_grouped(gw, upstreams):
    route_a, _ = priced_route(gw, upstreams["alpha"], input="1", output="2")
    route_b, name_b = priced_route(gw, upstreams["beta"], input="5", output="7")
    team_x, team_y = create_team(gw), create_team(gw)
    kx, key_x = gw.create_key(team=team_x)
    ky, key_y = gw.create_key(team=team_y)
    for key, route, times in ((key_x, route_a, 2), (key_x, route_b, 1), (key_y, route_b, 3)):
        for _ in range(times):
            chat(gw, key, route)
    per_a, per_b = 11 * 1000 + 5 * 2000, 11 * 5000 + 5 * 7000
    wait_spend(gw, 3, team=team_x)
    wait_spend(gw, 3, team=team_y)
    x_by_route = spend(gw, team=team_x, by="route", since="1h")
    assert {g["group"]: (g["requests"], cost_nanos(g)) for g in x_by_route["groups"]} == {
        route_a: (2, 2 * per_a),
        route_b: (1, per_b),
    }
    assert cost_nanos(x_by_route["total"]) == 2 * per_a + per_b and x_by_route["currency"] == "USD"
    by_variant = spend(gw, key=ky, by="variant")
    assert [(g["group"], g["requests"]) for g in by_variant["groups"]] == [(name_b, 3)]
    by_key = {g["group"]: g["requests"] for g in spend(gw, by="key", since="2h")["groups"]}
    assert by_key[kx] == 3 and by_key[ky] == 3
    by_team = {g["group"]: cost_nanos(g) for g in spend(gw, by="team")["groups"]}
    assert by_team[team_y] == 3 * per_b
    with gw.admin() as admin:
        assert_error(admin.get("/admin/spend", params={"since": "yesterday"}), 422, "invalid_since")
        assert_error(admin.get("/admin/spend", params={"since": "2026-01-01T00:00:00"}), 422, "invalid_since")
        assert_error(admin.get("/admin/spend", params={"by": "planet"}), 422)
    future = spend(gw, team=team_x, since="2999-01-01T00:00:00+00:00")
    assert future["total"]["requests"] == 0


def test_spend_counter_in_prometheus(gw, upstreams):
    route, name = priced_route(gw, upstreams["alpha"], input="1000", output="1000")
    team = create_team(gw)
    _, key = gw.create_key(team=team)
    chat(gw, key, route)
    labels = {"route": route, "variant": name, "team": team}
    samples = [
        s
        for family in text_string_to_metric_families(httpx.get(f"{gw.url}/metrics").text)
        for s in family.samples
        if s.name == "llmops_gateway_spend_total" and s.labels == labels
    ]
    assert [s.value for s in samples] == [pytest.approx(16 * 1000 / 1e6)]


def test_admin_endpoints_need_the_admin_token(gw):
    for method, path in (("GET", "/admin/teams"), ("GET", "/admin/spend"), ("PUT", "/admin/prices/x")):
        response = httpx.request(method, f"{gw.url}{path}", headers={"authorization": f"Bearer {uuid.uuid4()}"})
        assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"
