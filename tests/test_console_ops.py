"""The console's operations pages over HTTP, against a real gateway: each key's usage on the keys page, the spend
page, editing a route's fallbacks and RAG settings (a revision, like any route change), and failed sign-ins
limited per client address."""

import re
import time

import httpx
import pytest

from llmops_testkit.backends import postgres_only
from llmops_testkit.console import console_client, post_form, sign_in
from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.spend import create_team, set_price, unique, wait_spend

PER_REQUEST = "0.000021"  # the fake upstream's 11 prompt and 5 completion tokens at 1 and 2 per million
WINDOW_S = 2


@pytest.fixture(scope="module")
def gw(make_gateway, sql_url):
    return make_gateway(
        sql_url=sql_url,
        GATEWAY_SPEND_FLUSH_INTERVAL_S="0.05",
        GATEWAY_CONSOLE_SIGNIN_MAX_FAILURES="3",
        GATEWAY_CONSOLE_SIGNIN_WINDOW_S=str(WINDOW_S),
        GATEWAY_CONSOLE_CLIENT_IP_HEADER="x-forwarded-for",
    )


@pytest.fixture
def signed_in(gw):
    with console_client(gw.url) as client:
        assert sign_in(client, gw.admin_token).status_code == 303
        yield client


def _row(html: str, text: str) -> str:
    rows = [r for r in re.findall(r"<tr>.*?</tr>", html, flags=re.DOTALL) if text in r]
    assert len(rows) == 1, (text, html)
    return rows[0]


def _usage(row: str) -> dict[str, str]:
    return dict(re.findall(r'data-usage="(\w+)">(?:<a [^>]*>)?([^<]+)<', row))


def test_keys_show_their_usage_and_the_spend_page_groups_it(gw, upstreams, signed_in):
    name = unique("priced")
    set_price(gw, name, input="1", output="2")
    route = gw.put_route(variants=[variant(name, upstreams["alpha"])])
    team = create_team(gw)
    used, idle = unique("used"), unique("idle")
    key_id, key = gw.create_key(name=used, team=team)
    idle_id, _ = gw.create_key(name=idle)
    with gw.client(key) as client:
        for _ in range(2):
            assert client.post("/v1/chat/completions", json=chat_body(route)).status_code == 200
    assert wait_spend(gw, 2, key=key_id)["total"]["requests"] == 2

    page = signed_in.get("/console/keys").text
    assert _usage(_row(page, used)) == {"requests": "2", "tokens": "22 / 10", "spend": "0.000042"}
    assert _usage(_row(page, idle)) == {"requests": "0", "tokens": "0 / 0", "spend": "0"}
    assert f'href="/console/spend?key={key_id}"' in page

    by_key = signed_in.get("/console/spend", params={"by": "key", "since": "24h"})
    assert by_key.status_code == 200
    row = _row(by_key.text, used)
    assert key_id in row and ">2<" in row and "0.000042" in row
    by_route = signed_in.get("/console/spend", params={"by": "route", "team": team})
    assert "Total: 0.000042 USD · 2 requests" in by_route.text and route in _row(by_route.text, route)
    per_day = by_route.text.split('aria-label="Spend per day: ')[1].split('"')[0]  # a chart drawn on the server
    assert "4.2e-05" in per_day and per_day.count(";") >= 29  # every day of the window, the empty ones too
    per_hour = signed_in.get("/console/spend", params={"since": "24h", "team": team}).text
    assert "4.2e-05" in per_hour.split('aria-label="Spend per hour: ')[1].split('"')[0]
    overview = signed_in.get("/console/").text.split('id="spend-title"')[1]
    assert "Spend by route" in overview and route in overview and name in overview  # by route and by variant
    nothing = signed_in.get("/console/spend", params={"key": idle_id})
    assert "No spend recorded in this window." in nothing.text
    for params, message in (({"by": "planet"}, "group by"), ({"since": "forever"}, "window")):
        refused = signed_in.get("/console/spend", params=params)
        assert refused.status_code == 400 and message in refused.text and "<h1>" in refused.text


def test_editing_fallbacks_and_rag_settings(gw, upstreams, signed_in):
    route = gw.put_route(
        variants=[variant("a", upstreams["alpha"], weight=3), variant("b", upstreams["beta"], weight=1)]
    )
    settings = {"fallbacks": "b", "rag_collection": "docs", "rag_top_k": "3", "rag_on_error": "answer_without_context"}
    forged = signed_in.post(f"/console/routes/{route}/settings", data=settings)
    assert forged.status_code == 403 and "security token (CSRF)" in forged.text

    saved = post_form(signed_in, "/console/routes", f"/console/routes/{route}/settings", settings)
    assert saved.status_code == 303
    with gw.admin() as admin:
        stored = admin.get(f"/admin/routes/{route}").json()
        revisions = admin.get(f"/admin/routes/{route}/revisions").json()["data"]
        audited = admin.get("/admin/audit", params={"target": route, "action": "routes.put"}).json()["data"]
    assert stored["fallbacks"] == ["b"] and [v["weight"] for v in stored["variants"]] == [3.0, 1.0]
    assert stored["rag"]["collection"] == "docs" and stored["rag"]["top_k"] == 3
    assert stored["rag"]["on_retriever_error"] == "answer_without_context"
    assert [r["actor"] for r in revisions] == ["platform", "platform"]
    assert (audited[0]["actor"], audited[0]["before"]["spec"]["fallbacks"]) == ("platform", [])
    page = signed_in.get(saved.headers["location"]).text
    assert f"Saved the fallbacks and RAG settings of route {route}" in page and 'value="docs"' in page

    for fields, message in (
        ({"fallbacks": "b, zzz"}, "Fallbacks: 'zzz' is neither a variant"),
        ({"rag_top_k": "99"}, "rag.top_k: Input should be less than or equal to 20"),
        ({"rag_collection": "no spaces"}, "rag.collection: String should match pattern"),
        ({"rag_on_error": "shrug"}, "rag.on_retriever_error"),
    ):
        refused = post_form(signed_in, "/console/routes", f"/console/routes/{route}/settings", {**settings, **fields})
        assert refused.status_code == 400, fields
        assert "The fallbacks and RAG settings were not saved" in refused.text
        assert message in refused.text.replace("&#39;", "'"), refused.text
    cleared = {"fallbacks": "", "rag_collection": "", "rag_top_k": "3", "rag_on_error": "fail"}
    assert post_form(signed_in, "/console/routes", f"/console/routes/{route}/settings", cleared).status_code == 303
    stored = gw.admin().get(f"/admin/routes/{route}").json()
    assert stored["fallbacks"] == [] and stored["rag"]["collection"] is None and stored["rag"]["top_k"] == 3


def _identity(gw, role: str, team: str | None = None) -> tuple[str, str]:
    with gw.admin() as admin:
        response = admin.post("/admin/identities", json={"name": unique(role), "role": role, "team": team})
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["token"]


def test_a_team_admin_sees_and_changes_its_own_team_only(gw):
    team, other = create_team(gw), create_team(gw)
    ours_id, _ = gw.create_key(name=unique("ours"), team=team)
    theirs_id, _ = gw.create_key(name=unique("theirs"), team=other)
    route = gw.put_route(variants=[{"name": "a", "upstream": "http://127.0.0.1:9/v1", "model": "m"}])
    identity_id, token = _identity(gw, "team-admin", team)
    with console_client(gw.url) as client:
        signed = sign_in(client, token)
        assert signed.status_code == 303 and signed.headers["location"] == "/console/keys"
        keys = client.get("/console/keys").text
        assert f"Keys of team {team}" in keys and f"team {team})" in keys  # who is signed in
        assert f"?key={ours_id}" in keys and f"?key={theirs_id}" not in keys
        assert 'href="/console/training"' not in keys and 'href="/console/feedback"' in keys  # its pages only
        assert client.get("/console/").headers["location"] == "/console/keys"
        for path in ("/console/experiments", "/console/training", "/console/collections"):
            refused = client.get(path)
            assert refused.status_code == 403 and "shared by every team" in refused.text, path
        assert client.get("/console/spend", params={"team": other}).status_code == 403
        assert f"· team {team}" in client.get("/console/spend").text  # narrowed to its team without asking

        created = post_form(client, "/console/keys", "/console/keys", {"name": "made-by-team-admin"})
        assert created.status_code == 201
        theirs = post_form(client, "/console/keys", f"/console/keys/{theirs_id}/revoke")
        split = post_form(client, "/console/routes", f"/console/routes/{route}/split", {"weight:a": "2"})
        assert theirs.status_code == 403 and split.status_code == 403
        assert post_form(client, "/console/keys", f"/console/keys/{ours_id}/revoke").status_code == 303
        with gw.admin() as admin:
            made = [k for k in admin.get("/admin/keys").json()["data"] if k["name"] == "made-by-team-admin"]
            assert [k["team"] for k in made] == [team]
            assert admin.get(f"/admin/keys/{theirs_id}").json()["revoked_at"] is None
            assert admin.get(f"/admin/keys/{ours_id}").json()["revoked_at"] is not None
            audited = admin.get("/admin/audit", params={"target": ours_id, "action": "keys.revoke"})
            assert [e["actor"] for e in audited.json()["data"]] == [identity_id]
            assert admin.delete(f"/admin/identities/{identity_id}").status_code == 200
        assert client.get("/console/keys").status_code == 303  # revoked: signed out at once


def test_a_viewer_reads_everything_and_changes_nothing(gw):
    route = gw.put_route(variants=[{"name": "a", "upstream": "http://127.0.0.1:9/v1", "model": "m"}])
    key_id, _ = gw.create_key(name=unique("viewed"))
    _, token = _identity(gw, "viewer")
    with console_client(gw.url) as client:
        assert sign_in(client, token, next_path="/console/routes").status_code == 303
        for path in ("/console/", "/console/keys", "/console/routes", "/console/spend"):
            assert client.get(path).status_code == 200, path
        for action, data in (
            ("/console/keys", {"name": "by-a-viewer"}),
            (f"/console/keys/{key_id}/revoke", {}),
            (f"/console/routes/{route}/settings", {"fallbacks": "a"}),
        ):
            refused = post_form(client, "/console/routes", action, data)
            assert refused.status_code == 403 and "viewer" in refused.text, action
    with gw.admin() as admin:
        assert admin.get(f"/admin/keys/{key_id}").json()["revoked_at"] is None
        assert admin.get(f"/admin/routes/{route}").json()["fallbacks"] == []


@postgres_only  # the limiter counts in Redis: the SQL store is not its subject
def test_failed_sign_ins_are_limited_per_address(gw):
    """Counted per client address, which the ingress appends to X-Forwarded-For (its last entry counts)."""
    with console_client(gw.url) as guesser, console_client(gw.url) as admin:
        guesser.headers["x-forwarded-for"] = "198.51.100.9, 203.0.113.7"
        admin.headers["x-forwarded-for"] = "203.0.113.8"
        for _ in range(3):
            assert sign_in(guesser, "a-guess").status_code == 401
        locked = sign_in(guesser, gw.admin_token)  # the right token too: a guesser learns nothing
        assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text
        assert 1 <= int(locked.headers["retry-after"]) <= WINDOW_S
        assert "llmops_console=" not in locked.headers.get("set-cookie", "")
        guesser.headers["x-forwarded-for"] = "198.51.100.10, 203.0.113.7"  # forging the first entry changes nothing
        assert sign_in(guesser, gw.admin_token).status_code == 429
        assert sign_in(admin, gw.admin_token).status_code == 303  # another address is not locked out
        time.sleep(int(locked.headers["retry-after"]) + 0.2)
        assert sign_in(guesser, gw.admin_token).status_code == 303  # the window ended
    # The API's lockout counts them (one mechanism, its own surface): the same metrics and alerts.
    metrics = httpx.get(f"{gw.url}/metrics", timeout=10).text
    assert re.search(r'llmops_gateway_auth_failures_total\{surface="console"\} [3-9]', metrics), metrics
    assert 'llmops_gateway_auth_lockouts_total{by="address",surface="console"}' in metrics
