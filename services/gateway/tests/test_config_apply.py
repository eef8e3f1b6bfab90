"""``POST /admin/config/apply``: routes and key fields made to match a state in one transaction (all or nothing), the
plan as a dry run, nothing written when nothing differs; ``GET /admin/config`` re-applies to an empty plan."""

import uuid

import pytest

VARIANT = {"name": "a", "upstream": "http://127.0.0.1:9/v1", "model": "m"}


@pytest.fixture
def admin(gateway):
    with gateway.admin() as client:
        yield client


def test_apply_is_atomic_idempotent_and_round_trips(admin, gateway):
    name, key_name = f"cfg-{uuid.uuid4().hex[:8]}", f"cfg-key-{uuid.uuid4().hex[:6]}"
    gateway.create_key(name=key_name)
    state = {
        "routes": {name: {"variants": [VARIANT]}},
        "keys": {key_name: {"limits": {"rpm": 5}, "tier": "pro", "allowed_collections": ["kb"]}},
    }

    # A state naming a key that does not exist: refused whole, the valid route is not created either.
    bad = admin.post("/admin/config/apply", json={**state, "keys": {**state["keys"], "ghost": {}}})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "keys.ghost", bad.text
    assert admin.get(f"/admin/routes/{name}").status_code == 404

    plan = admin.post("/admin/config/apply", json={**state, "dry_run": True}).json()
    assert {(c["kind"], c["name"], c["action"]) for c in plan["changes"]} == {
        ("route", name, "create"),
        ("key", key_name, "update"),
    }
    assert plan["applied"] is False and admin.get(f"/admin/routes/{name}").status_code == 404

    assert admin.post("/admin/config/apply", json=state).json()["applied"] is True
    key = next(k for k in admin.get("/admin/keys").json()["data"] if k["name"] == key_name)
    assert key["limits"]["rpm"] == 5 and key["tier"] == "pro" and key["allowed_collections"] == ["kb"]
    again = admin.post("/admin/config/apply", json=state).json()
    assert again == {"changes": [], "applied": False}
    assert len(admin.get(f"/admin/routes/{name}/revisions").json()["data"]) == 1
    assert admin.get("/admin/audit", params={"target": key["id"]}).json()["data"][0]["action"] == "keys.update"

    exported = admin.get("/admin/config").json()
    exported.pop("unmanaged_keys")
    replay = admin.post("/admin/config/apply", json={**exported, "prune": True, "dry_run": True}).json()
    assert replay["changes"] == []
    # Pruning an empty state would delete every route: as a dry run it lists them, and changes nothing.
    emptied = admin.post("/admin/config/apply", json={"prune": True, "dry_run": True}).json()["changes"]
    assert {"kind": "route", "name": name, "action": "delete"} in [
        {k: c[k] for k in ("kind", "name", "action")} for c in emptied
    ]


def test_a_bad_route_is_422_naming_it_and_viewers_may_only_plan(admin):
    bad = admin.post("/admin/config/apply", json={"routes": {"r": {"variants": [{**VARIANT, "weight": -1}]}}})
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "routes.r.variants.0.weight"
    viewer = admin.post("/admin/identities", json={"name": f"v-{uuid.uuid4().hex[:6]}", "role": "viewer"}).json()
    headers = {"authorization": f"Bearer {viewer['token']}"}
    assert admin.post("/admin/config/apply", json={"dry_run": True}, headers=headers).status_code == 200
    refused = admin.post("/admin/config/apply", json={}, headers=headers)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden_role"
