"""API keys and the admin API: hashed at rest, secret shown once, refused when bad, expired or revoked."""

import asyncio
import hashlib
import hmac
import time

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from llmops_common.settings import InsecureSettingsError
from llmops_gateway.app import create_app
from llmops_gateway.settings import DEV_ADMIN_TOKEN, GatewaySettings
from llmops_testkit.gateway import chat_body, variant


@pytest.fixture
def route(gateway, upstreams):
    return gateway.put_route(variants=[variant("a", upstreams["alpha"])])


def _chat(gateway, key: str, route: str) -> httpx.Response:
    with gateway.client(key) as client:
        return client.post("/v1/chat/completions", json=chat_body(route))


async def _rows(sql_url: str) -> list[dict]:
    engine = create_async_engine(sql_url)
    try:
        async with engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(text("SELECT * FROM api_keys"))]
    finally:
        await engine.dispose()


def test_secret_is_shown_once_and_stored_only_as_keyed_hash(gateway, sql_url):
    key_id, secret = gateway.create_key(name="shown-once", limits={"rpm": 10})
    assert secret.startswith("sk-llmops-") and len(secret) > 40
    with gateway.admin() as admin:
        listed = admin.get("/admin/keys").text
        one = admin.get(f"/admin/keys/{key_id}").json()
    assert secret not in listed and "key" not in one and one["prefix"] == secret[:16]
    rows = {r["id"]: r for r in asyncio.run(_rows(sql_url))}
    stored = rows[key_id]
    assert all(secret not in str(value) for value in stored.values())
    expected = hmac.new(gateway.env["GATEWAY_KEY_SECRET"].encode(), secret.encode(), hashlib.sha256).hexdigest()
    assert stored["key_hash"] == expected


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing_api_key"),
        ("Basic dXNlcjpwYXNz", "invalid_api_key"),
        ("Bearer not-our-format", "invalid_api_key"),
        ("Bearer sk-llmops-thisKeyWasNeverIssued0000000000000000000", "invalid_api_key"),
    ],
)
def test_bad_keys_are_refused(gateway, route, authorization, code):
    headers = {"authorization": authorization} if authorization else {}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=chat_body(route), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == {
        "message": response.json()["error"]["message"],
        "type": "authentication_error",
        "code": code,
        "param": None,
    }
    assert response.headers["x-request-id"]


def test_revoked_key_is_refused(gateway, route):
    key_id, secret = gateway.create_key()
    assert _chat(gateway, secret, route).status_code == 200
    with gateway.admin() as admin:
        revoked = admin.delete(f"/admin/keys/{key_id}").json()
    assert revoked["revoked_at"] is not None
    response = _chat(gateway, secret, route)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    with gateway.admin() as admin:
        assert any(k["id"] == key_id and k["revoked_at"] for k in admin.get("/admin/keys").json()["data"])


def test_expired_key_is_refused(gateway, route):
    _, secret = gateway.create_key(expires_in_s=1)
    assert _chat(gateway, secret, route).status_code == 200
    time.sleep(1.1)
    response = _chat(gateway, secret, route)
    assert response.status_code == 401 and response.json()["error"]["code"] == "expired_api_key"


def test_limits_and_routes_can_be_changed(gateway, upstreams, route):
    key_id, secret = gateway.create_key(limits={"rpm": 1})
    other = gateway.put_route(variants=[variant("b", upstreams["beta"])])
    with gateway.admin() as admin:
        updated = admin.patch(f"/admin/keys/{key_id}", json={"limits": {"rpm": 100}, "allowed_routes": [other]}).json()
    assert updated["limits"]["rpm"] == 100 and updated["allowed_routes"] == [other]
    assert _chat(gateway, secret, route).status_code == 403
    assert [_chat(gateway, secret, other).status_code for _ in range(3)] == [200, 200, 200]


def test_a_collection_grant_round_trips_through_the_admin_api(gateway, route):
    key_id, secret = gateway.create_key(allowed_collections=["kb", "faq"])
    with gateway.admin() as admin:
        assert admin.get(f"/admin/keys/{key_id}").json()["allowed_collections"] == ["kb", "faq"]
        listed = next(k for k in admin.get("/admin/keys").json()["data"] if k["id"] == key_id)
        assert listed["allowed_collections"] == ["kb", "faq"]
        # A PATCH that leaves it out keeps it; [] grants no collection; null gives back what the routes allow.
        assert admin.patch(f"/admin/keys/{key_id}", json={"tier": "pro"}).json()["allowed_collections"] == ["kb", "faq"]
        assert (
            admin.patch(f"/admin/keys/{key_id}", json={"allowed_collections": []}).json()["allowed_collections"] == []
        )
        assert _chat(gateway, secret, route).status_code == 200  # no RAG asked for: the grant is not in the way
        bad = admin.patch(f"/admin/keys/{key_id}", json={"allowed_collections": ["no/slashes"]})
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "allowed_collections.0", bad.text
        cleared = admin.patch(f"/admin/keys/{key_id}", json={"allowed_collections": None}).json()
        assert cleared["allowed_collections"] is None
        audit = admin.get("/admin/audit", params={"target": key_id}).json()["data"]
        assert {"before": [], "after": None} == {
            side: audit[0][side]["allowed_collections"] for side in ("before", "after")
        }, audit[0]
        assert admin.get(f"/admin/keys/{gateway.create_key()[0]}").json()["allowed_collections"] is None  # no grant


@pytest.mark.parametrize("token", [None, "wrong-token", DEV_ADMIN_TOKEN])
def test_admin_api_needs_the_admin_token(gateway, token):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    for method, path in [
        ("GET", "/admin/keys"),
        ("POST", "/admin/keys"),
        ("GET", "/admin/routes"),
        ("PUT", "/admin/routes/x"),
        ("DELETE", "/admin/keys/key_x"),
    ]:
        response = httpx.request(method, f"{gateway.url}{path}", headers=headers, json={"name": "x"})
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["code"] == "invalid_admin_token"


def test_a_client_key_is_no_admin_token(gateway):
    _, secret = gateway.create_key()
    response = httpx.get(f"{gateway.url}/admin/keys", headers={"authorization": f"Bearer {secret}"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x", "limits": {"rpm": 0}},
        {"name": "x", "limits": {"rpm": "many"}},
        {"name": "x", "expires_in_s": 10, "expires_at": "2030-01-01T00:00:00Z"},
        {"name": "x", "expires_at": "2030-01-01T00:00:00"},
        {"name": "x", "surprise": True},
        {"name": "x", "allowed_collections": ["bad/name"]},
        {"name": "x", "allowed_collections": ["kb"] * 65},
    ],
)
def test_bad_key_requests_get_422(gateway, body):
    with gateway.admin() as admin:
        response = admin.post("/admin/keys", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_key_id_is_404(gateway):
    with gateway.admin() as admin:
        assert admin.delete("/admin/keys/key_nope").status_code == 404
        assert admin.get("/admin/keys/key_nope").json()["error"]["code"] == "key_not_found"


def test_secret_never_reaches_logs_or_metrics(gateway, route):
    key_id, secret = gateway.create_key(limits={"rpm": 100})
    _chat(gateway, secret, route)
    httpx.post(f"{gateway.url}/v1/chat/completions", json={"bad": 1}, headers={"authorization": f"Bearer {secret}"})
    with gateway.admin() as admin:
        admin.delete(f"/admin/keys/{key_id}")
    _chat(gateway, secret, route)
    metrics = httpx.get(f"{gateway.url}/metrics").text
    time.sleep(0.3)  # the request log is written off the request path
    assert secret not in gateway.logs() and secret not in metrics
    assert secret not in gateway.request_log_path.read_text()
    assert secret[len("sk-llmops-") :] not in gateway.logs()


def test_no_default_secrets_outside_dev_mode(tmp_path):
    base = {"database_url": f"sqlite+aiosqlite:///{tmp_path}/x.db", "dev_mode": False}
    with pytest.raises(InsecureSettingsError, match="GATEWAY_ADMIN_TOKEN"):
        create_app(GatewaySettings(**base, key_secret="k" * 32))
    with pytest.raises(InsecureSettingsError, match="GATEWAY_ADMIN_TOKEN"):
        create_app(GatewaySettings(**base, admin_token=DEV_ADMIN_TOKEN, key_secret="k" * 32))
    with pytest.raises(InsecureSettingsError, match="GATEWAY_KEY_SECRET"):
        create_app(GatewaySettings(**base, admin_token="a" * 32, key_secret="short"))
    create_app(GatewaySettings(**base, admin_token="a" * 32, key_secret="k" * 32))
    create_app(GatewaySettings(**{**base, "dev_mode": True}))
