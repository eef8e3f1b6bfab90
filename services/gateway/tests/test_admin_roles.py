"""Scoped admin roles and the audit log through a real gateway on both SQL backends.

The role matrix: every admin endpoint (the test fails when the app has one it does not list) called by the
platform admin token, an admin identity, a team-admin of team A, a viewer and nobody. Every change that succeeds
is in the audit log exactly once, with who, what, when, before and after, and no secret anywhere in it.
"""

import uuid
from collections import Counter

import httpx
import pytest

from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import variant

ROLES = ("platform", "admin", "team_admin", "viewer", "nobody")
OK = {"GET": 200, "POST": 201, "PUT": 200, "PATCH": 200, "DELETE": 200}
# Answers that are no creation or have no body: a revert and a config apply answer the route and the plan.
OK_EXCEPT = {
    ("DELETE", "/admin/routes/{name}"): 204,
    ("POST", "/admin/routes/{name}/revert"): 200,
    ("POST", "/admin/config/apply"): 200,
}


@pytest.fixture(scope="module")
def gw(make_gateway, sql_url):
    return make_gateway(sql_url=sql_url)


def _id() -> str:
    return uuid.uuid4().hex[:8]


class World:
    """Objects to act on, made by a setup identity (so the platform token's audit entries are the matrix's)."""

    def __init__(self, gw, upstream) -> None:
        self.gw, self.upstream = gw, upstream
        platform = self.client(gw.admin_token)
        self.team_a, self.team_b = f"a-{_id()}", f"b-{_id()}"
        for team in (self.team_a, self.team_b):
            assert platform.post("/admin/teams", json={"name": team}).status_code == 201
        setup = platform.post("/admin/identities", json={"name": "setup", "role": "admin"}).json()
        self.setup = self.client(setup["token"])
        self.tokens = {"platform": gw.admin_token, "nobody": "llmops-admin-" + "x" * 43}
        self.ids = {"platform": "platform"}
        for role, body in (
            ("admin", {"role": "admin"}),
            ("team_admin", {"role": "team-admin", "team": self.team_a}),
            ("viewer", {"role": "viewer"}),
        ):
            made = self.setup.post("/admin/identities", json={"name": role, **body}).json()
            self.tokens[role], self.ids[role] = made["token"], made["id"]
        self.key_a, self.key_b = self.key(self.team_a), self.key(self.team_b)
        self.route = self.route_()
        self.variant = f"v-{_id()}"
        assert self.setup.put(f"/admin/prices/{self.variant}", json=_price()).status_code == 200
        self.secrets = [setup["token"], *self.tokens.values()]

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.gw.url, headers={"authorization": f"Bearer {token}"}, timeout=10)

    def key(self, team: str) -> str:
        made = self.setup.post("/admin/keys", json={"name": "k", "team": team}).json()
        self.secrets = [*getattr(self, "secrets", []), made["key"]]
        return made["id"]

    def route_(self) -> str:
        name = f"r-{_id()}"
        assert self.setup.put(f"/admin/routes/{name}", json={"variants": [variant("a", self.upstream)]}).is_success
        return name

    def identity(self) -> str:
        return self.setup.post("/admin/identities", json={"name": "tmp", "role": "viewer"}).json()["id"]

    def changed_route(self) -> str:
        """A route with two revisions: a revert to the first changes it."""
        name = self.route_()
        body = {"variants": [variant("a", self.upstream)], "sticky": False}
        assert self.setup.put(f"/admin/routes/{name}", json=body).is_success
        return name


def _price() -> dict:
    return {"input_per_mtok": "1", "output_per_mtok": "2"}


# (method, route template, how to make the path and body, action audited, expected status per role)
MATRIX = [
    ("POST", "/admin/keys", lambda w: ("/admin/keys", {"name": "n", "team": w.team_a}), "keys.create", "AAA-"),
    ("POST", "/admin/keys", lambda w: ("/admin/keys", {"name": "n", "team": w.team_b}), "keys.create", "AA--"),
    ("GET", "/admin/keys", lambda w: ("/admin/keys", None), None, "AAAA"),
    ("GET", "/admin/keys/{key_id}", lambda w: (f"/admin/keys/{w.key_a}", None), None, "AAAA"),
    ("GET", "/admin/keys/{key_id}", lambda w: (f"/admin/keys/{w.key_b}", None), None, "AA-A"),
    (
        "PATCH",
        "/admin/keys/{key_id}",
        lambda w: (f"/admin/keys/{w.key(w.team_a)}", {"limits": {"rpm": 5}}),
        "keys.update",
        "AAA-",
    ),
    (
        "PATCH",
        "/admin/keys/{key_id}",
        lambda w: (f"/admin/keys/{w.key(w.team_b)}", {"limits": {"rpm": 5}}),
        "keys.update",
        "AA--",
    ),
    (
        "PATCH",
        "/admin/keys/{key_id}",
        lambda w: (f"/admin/keys/{w.key(w.team_a)}", {"team": w.team_b}),
        "keys.update",
        "AA--",
    ),
    ("DELETE", "/admin/keys/{key_id}", lambda w: (f"/admin/keys/{w.key(w.team_a)}", None), "keys.revoke", "AAA-"),
    ("DELETE", "/admin/keys/{key_id}", lambda w: (f"/admin/keys/{w.key(w.team_b)}", None), "keys.revoke", "AA--"),
    (
        "PUT",
        "/admin/routes/{name}",
        lambda w: (f"/admin/routes/r-{_id()}", {"variants": [variant("a", w.upstream)]}),
        "routes.put",
        "AA--",
    ),
    ("GET", "/admin/routes", lambda w: ("/admin/routes", None), None, "AAAA"),
    ("GET", "/admin/routes/{name}", lambda w: (f"/admin/routes/{w.route}", None), None, "AAAA"),
    ("DELETE", "/admin/routes/{name}", lambda w: (f"/admin/routes/{w.route_()}", None), "routes.delete", "AA--"),
    ("GET", "/admin/routes/{name}/revisions", lambda w: (f"/admin/routes/{w.route}/revisions", None), None, "AAAA"),
    (
        "POST",
        "/admin/routes/{name}/revert",
        lambda w: (f"/admin/routes/{w.changed_route()}/revert", {"revision": 1}),
        "routes.revert",
        "AA--",
    ),
    ("GET", "/admin/config", lambda w: ("/admin/config", None), None, "AA-A"),
    (
        "POST",
        "/admin/config/apply",
        lambda w: ("/admin/config/apply", {"routes": {f"c-{_id()}": {"variants": [variant("a", w.upstream)]}}}),
        "routes.put",
        "AA--",
    ),
    ("POST", "/admin/teams", lambda w: ("/admin/teams", {"name": f"t-{_id()}"}), "teams.create", "AA--"),
    ("GET", "/admin/teams", lambda w: ("/admin/teams", None), None, "AAAA"),
    ("GET", "/admin/teams/{name}", lambda w: (f"/admin/teams/{w.team_a}", None), None, "AAAA"),
    ("GET", "/admin/teams/{name}", lambda w: (f"/admin/teams/{w.team_b}", None), None, "AA-A"),
    (
        "PATCH",
        "/admin/teams/{name}",
        lambda w: (f"/admin/teams/{w.team_a}", {"description": _id()}),
        "teams.update",
        "AA--",
    ),
    ("PUT", "/admin/prices/{variant}", lambda w: (f"/admin/prices/{w.variant}", _price()), "prices.set", "AA--"),
    ("GET", "/admin/prices", lambda w: ("/admin/prices", None), None, "AAAA"),
    ("GET", "/admin/prices/{variant}", lambda w: (f"/admin/prices/{w.variant}", None), None, "AAAA"),
    ("GET", "/admin/spend", lambda w: ("/admin/spend", None), None, "AAAA"),
    ("GET", "/admin/spend", lambda w: (f"/admin/spend?team={w.team_b}", None), None, "AA-A"),
    (
        "POST",
        "/admin/identities",
        lambda w: ("/admin/identities", {"name": "x", "role": "viewer"}),
        "identities.create",
        "AA--",
    ),
    ("GET", "/admin/identities", lambda w: ("/admin/identities", None), None, "AA--"),
    (
        "DELETE",
        "/admin/identities/{identity_id}",
        lambda w: (f"/admin/identities/{w.identity()}", None),
        "identities.revoke",
        "AA--",
    ),
    ("GET", "/admin/audit", lambda w: ("/admin/audit", None), None, "AA-A"),
]


@postgres_only  # the OpenAPI document, the same on either backend
def test_the_matrix_lists_every_admin_endpoint(gw):
    paths = httpx.get(f"{gw.url}/openapi.json").json()["paths"]
    served = {(m.upper(), p) for p, methods in paths.items() if p.startswith("/admin/") for m in methods}
    assert served == {(method, template) for method, template, *_ in MATRIX}


def test_role_matrix_and_an_audit_record_for_every_change(gw, upstreams):
    world = World(gw, upstreams["alpha"])
    with world.client(gw.admin_token) as admin:  # entries from here on are the matrix's
        start = max((e["id"] for e in admin.get("/admin/audit").json()["data"]), default=0)
    expected_audit: Counter = Counter()
    failures = []
    for method, template, make, action, allowed in MATRIX:
        for role, mark in zip(ROLES, allowed + "-", strict=True):
            path, body = make(world)
            with world.client(world.tokens[role]) as client:
                response = client.request(method, path, json=body)
            want = OK_EXCEPT.get((method, template), OK[method]) if mark == "A" else (401 if role == "nobody" else 403)
            if response.status_code != want:
                failures.append(f"{role} {method} {path}: {response.status_code} (wanted {want}) {response.text[:120]}")
                continue
            if mark != "A":
                error = response.json()["error"]
                assert error["type"] in ("permission_error", "authentication_error") and error["message"]
            elif action is not None:
                expected_audit[(world.ids[role], action)] += 1
    assert not failures, "\n".join(failures)

    with world.client(gw.admin_token) as admin:
        response = admin.get("/admin/audit", params={"limit": 1000})
    entries = response.json()["data"]
    actors = set(world.ids.values())
    audited = Counter((e["actor"], e["action"]) for e in entries if e["actor"] in actors and e["id"] > start)
    assert audited == expected_audit
    assert all(secret not in response.text for secret in world.secrets)


def test_audit_records_before_and_after(gw, upstreams):
    world = World(gw, upstreams["alpha"])
    with world.client(world.tokens["team_admin"]) as team_admin:
        made = team_admin.post("/admin/keys", json={"name": "bot"})  # a team-admin's key joins its team
        assert made.status_code == 201 and made.json()["team"] == world.team_a
        key_id = made.json()["id"]
        assert team_admin.patch(f"/admin/keys/{key_id}", json={"budget": {"daily": "2.5"}}).status_code == 200
        listed = team_admin.get("/admin/keys").json()["data"]
        assert {k["team"] for k in listed} == {world.team_a}
    with world.client(world.tokens["viewer"]) as viewer:
        entries = viewer.get("/admin/audit", params={"target": key_id}).json()["data"]
    update, create = entries  # newest first
    assert (create["action"], create["actor"], create["role"]) == ("keys.create", world.ids["team_admin"], "team-admin")
    assert create["before"] is None and create["after"]["team"] == world.team_a
    assert update["action"] == "keys.update"
    assert update["before"]["budget_nanos"] == {"daily": None, "monthly": None}
    assert update["after"]["budget_nanos"] == {"daily": 2_500_000_000, "monthly": None}
    assert made.json()["key"] not in str(entries)
    with world.client(world.tokens["admin"]) as admin:
        before_delete = admin.get(f"/admin/routes/{world.route}").json()
        assert admin.delete(f"/admin/routes/{world.route}").status_code == 204
        deleted = admin.get("/admin/audit", params={"target": world.route, "action": "routes.delete"}).json()["data"]
    assert deleted[0]["after"] is None and deleted[0]["before"]["spec"]["variants"] == before_delete["variants"]


def test_a_refused_change_changes_nothing_and_records_nothing(gw, upstreams):
    world = World(gw, upstreams["alpha"])
    with world.client(world.tokens["team_admin"]) as team_admin:
        refused = team_admin.patch(f"/admin/keys/{world.key_b}", json={"limits": {"rpm": 1}})
        missing = team_admin.patch("/admin/keys/key_missing", json={"limits": {"rpm": 1}})
    assert refused.status_code == 403 and missing.status_code == 404
    with world.client(gw.admin_token) as admin:
        assert admin.get(f"/admin/keys/{world.key_b}").json()["limits"]["rpm"] is None
        assert admin.get("/admin/audit", params={"target": world.key_b, "action": "keys.update"}).json()["data"] == []


def test_revoked_identity_is_refused_at_once(gw, upstreams):
    world = World(gw, upstreams["alpha"])
    with world.client(world.tokens["viewer"]) as viewer:
        assert viewer.get("/admin/keys").status_code == 200
        assert world.setup.delete(f"/admin/identities/{world.ids['viewer']}").status_code == 200
        refused = viewer.get("/admin/keys")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_admin_token"


def test_bad_identities_are_422_or_409(gw, upstreams):
    with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {gw.admin_token}"}) as admin:
        for body, status in (
            ({"name": "x", "role": "team-admin"}, 422),  # a team-admin needs a team
            ({"name": "x", "role": "viewer", "team": "some-team"}, 422),
            ({"name": "x", "role": "root"}, 422),
            ({"name": "x", "role": "team-admin", "team": "no-such-team"}, 409),
        ):
            response = admin.post("/admin/identities", json=body)
            assert response.status_code == status, response.text
            assert response.json()["error"]["message"]
