"""Every change of a route is a revision (who, when, what changed) written with the change; a revert gives the route
back exactly, as a new revision, even after it was deleted."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

V1 = {"name": "a", "upstream": "http://127.0.0.1:9/v1", "model": "m", "weight": 90}
V2 = {"name": "b", "upstream": "http://127.0.0.1:9/v1", "model": "m2", "weight": 10}


@pytest.fixture
def admin(gateway):
    with gateway.admin() as client:
        yield client


def _spec(admin, name):
    body = admin.get(f"/admin/routes/{name}").json()
    body.pop("updated_at")
    return body


def test_revert_restores_a_route_exactly_and_keeps_the_history(admin, gateway):
    name = f"rev-{uuid.uuid4().hex[:8]}"
    first = {"variants": [V1, V2], "fallbacks": ["b"], "rag": {"collection": "kb", "top_k": 2}}
    assert admin.put(f"/admin/routes/{name}", json=first).status_code == 200
    original = _spec(admin, name)
    assert admin.put(f"/admin/routes/{name}", json=first).status_code == 200  # unchanged: no revision
    changed = {"variants": [{**V1, "weight": 50}, {**V2, "weight": 50}], "sticky": False}
    assert admin.put(f"/admin/routes/{name}", json=changed).status_code == 200
    assert admin.delete(f"/admin/routes/{name}").status_code == 204

    history = admin.get(f"/admin/routes/{name}/revisions").json()["data"]
    assert [(r["revision"], r["action"]) for r in history] == [(3, "delete"), (2, "update"), (1, "create")]
    assert all(r["actor"] == "platform" for r in history)
    assert history[2]["spec"] == {k: v for k, v in original.items() if k != "name"}
    assert "variants.0.weight: 90.0 -> 50.0" in history[1]["changes"]
    assert "sticky: true -> false" in history[1]["changes"] and history[0]["spec"] is None

    reverted = admin.post(f"/admin/routes/{name}/revert", json={"revision": 1})
    assert reverted.status_code == 200, reverted.text
    assert _spec(admin, name) == original
    latest = admin.get(f"/admin/routes/{name}/revisions").json()["data"][0]
    assert (latest["revision"], latest["action"]) == (4, "revert")
    assert latest["changes"][0] == "revert to revision 1" and latest["spec"] == history[2]["spec"]

    # The admin identity that changes it is its actor; an audit entry is written beside the revision.
    assert admin.post(f"/admin/routes/{name}/revert", json={"revision": 2}).status_code == 200
    assert _spec(admin, name)["sticky"] is False
    audit = admin.get("/admin/audit", params={"target": name, "action": "routes.revert"}).json()["data"]
    assert len(audit) == 2


def test_bad_reverts_are_4xx_with_the_error_body(admin):
    name = f"rev-{uuid.uuid4().hex[:8]}"
    assert admin.get(f"/admin/routes/{name}/revisions").status_code == 404
    assert admin.put(f"/admin/routes/{name}", json={"variants": [V1]}).status_code == 200
    assert admin.delete(f"/admin/routes/{name}").status_code == 204
    missing = admin.post(f"/admin/routes/{name}/revert", json={"revision": 9})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "revision_not_found"
    deletion = admin.post(f"/admin/routes/{name}/revert", json={"revision": 2})
    assert deletion.status_code == 422 and deletion.json()["error"]["param"] == "revision"
    for body in ({"revision": 0}, {"revision": "x"}, {}):
        assert admin.post(f"/admin/routes/{name}/revert", json=body).status_code == 422


def test_changes_at_once_are_each_recorded_or_refused_never_lost(admin, gateway):
    """Concurrent writers race for the next revision number: each change is a revision or a 409, never a 500."""
    name = f"rev-{uuid.uuid4().hex[:8]}"

    def put(weight: int) -> int:
        with gateway.admin() as client:
            body = {"variants": [{**V1, "weight": weight}]}
            return client.put(f"/admin/routes/{name}", json=body).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(put, range(1, 9)))
    assert set(statuses) <= {200, 409} and 200 in statuses, statuses
    history = admin.get(f"/admin/routes/{name}/revisions").json()["data"]
    assert [r["revision"] for r in history] == list(range(len(history), 0, -1))
    assert history[0]["spec"] == {k: v for k, v in _spec(admin, name).items() if k != "name"}
