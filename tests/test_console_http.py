"""The console's security and input handling over HTTP, against a real gateway and feedback service: sign-in,
the session cookie's flags, CSRF on every state-changing form, a key's secret shown once, bad input answered
with words (never a 500), sign-out ending the session everywhere."""

import re
import time
import uuid

import pytest

from llmops_gateway.app import create_app
from llmops_gateway.settings import GatewaySettings
from llmops_testkit.backends import postgres_only
from llmops_testkit.console import CONSOLE_PAGES, console_client, csrf_of, post_form, sign_in
from llmops_testkit.gateway import variant
from llmops_testkit.spend import create_team, unique

# The tests on a gateway are @postgres_only: the console's pages, forms and sessions are their subject, not the store.


@pytest.fixture(scope="module")
def platform(make_gateway, sql_url, make_feedback, feedback_sql_url):
    feedback = make_feedback(sql_url=feedback_sql_url)
    gateway = make_gateway(sql_url=sql_url, GATEWAY_FEEDBACK_ADMIN_TOKEN=feedback.admin_token, **feedback.gateway_env())
    return gateway, feedback


@pytest.fixture
def signed_in(platform):
    gateway, _ = platform
    with console_client(gateway.url) as client:
        assert sign_in(client, gateway.admin_token).status_code == 303
        yield client


@postgres_only
def test_pages_need_sign_in_and_a_wrong_token_is_refused(platform):
    gateway, _ = platform
    with console_client(gateway.url) as client:
        for path in ("/console/", "/console/keys", "/console/routes", "/console/feedback", "/console/playground"):
            response = client.get(path)
            assert response.status_code == 303 and response.headers["location"].startswith("/console/login?next=")
        wrong = sign_in(client, "not-the-token")
        assert wrong.status_code == 401 and "That admin token is not right." in wrong.text
        assert "llmops_console=" not in wrong.headers.get("set-cookie", "")
        # The sign-in form itself carries a token: a form posted from elsewhere (no token, no cookie) is refused.
        forged = client.post("/console/login", data={"admin_token": gateway.admin_token})
        assert forged.status_code == 403 and "llmops_console=" not in forged.headers.get("set-cookie", "")


@postgres_only
def test_session_cookie_flags_and_sign_out(platform):
    gateway, _ = platform
    with console_client(gateway.url) as client:
        response = sign_in(client, gateway.admin_token, next_path="/console/keys")
        assert response.status_code == 303 and response.headers["location"] == "/console/keys"
        cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("llmops_console="))
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert "httponly" in flags and "samesite=strict" in flags and "path=/console/" in flags
        session_cookie = client.cookies["llmops_console"]
        page = client.get("/console/keys")
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]

        assert post_form(client, "/console/keys", "/console/logout").status_code == 303
    # The old cookie is dead on the server, not only deleted from this browser.
    with console_client(gateway.url) as replay:
        replay.cookies.set("llmops_console", session_cookie, path="/console/")
        assert replay.get("/console/keys").status_code == 303


@postgres_only
def test_an_open_redirect_is_not_offered(platform):
    gateway, _ = platform
    with console_client(gateway.url) as client:
        response = sign_in(client, gateway.admin_token, next_path="https://evil.example/")
        assert response.headers["location"] == "/console/"


def console_routes(*methods: str) -> set[tuple[str, str]]:
    """The console's routes as the app declares them, (method, path template): not a list kept by hand."""
    app = create_app(GatewaySettings(admin_token="a" * 32, key_secret="k" * 32, dev_mode=False, console_enabled=True))
    return {
        (method, route.path)
        for route in app.routes
        if route.path.startswith("/console/")
        for method in getattr(route, "methods", None) or ()
        if method in methods
    }


@postgres_only
def test_every_state_changing_form_needs_the_csrf_token(platform, signed_in):
    """Every POST the console has (the test fails when the app has one it does not list), forged without the token
    and with a wrong one, is refused and changes nothing; the upload (a multipart form) too."""
    gateway, _ = platform
    key_id, _ = gateway.create_key(name="csrf-target")
    route = gateway.put_route(variants=[{"name": "a", "upstream": "http://127.0.0.1:9/v1", "model": "m"}])
    forged = {
        "/console/login": ("/console/login", {"admin_token": gateway.admin_token}),
        "/console/logout": ("/console/logout", {}),
        "/console/keys": ("/console/keys", {"name": "forged"}),
        "/console/keys/{key_id}/revoke": (f"/console/keys/{key_id}/revoke", {}),
        "/console/routes/{name:path}/split": (f"/console/routes/{route}/split", {"weight:a": "2"}),
        "/console/routes/{name:path}/settings": (f"/console/routes/{route}/settings", {"fallbacks": "a"}),
        "/console/experiments/{experiment_id}/{what}": ("/console/experiments/x/promote", {}),
        "/console/training/jobs/{job_id}/cancel": ("/console/training/jobs/x/cancel", {}),
        "/console/collections/upload": ("/console/collections/upload", {"collection": "harbour"}),
    }
    assert console_routes("POST", "PUT", "PATCH", "DELETE") == {("POST", template) for template in forged}
    upload = {"file": ("forged.txt", b"The lighthouse is pink.", "text/plain")}
    for template, (action, data) in forged.items():
        files = upload if template == "/console/collections/upload" else None
        # The sign-in form's token is a cookie of its own (no session yet): it says so in its own words.
        refusal = "did not come from this console" if template == "/console/login" else "security token (CSRF)"
        for token in (None, "wrong-token"):
            body = data if token is None else {**data, "csrf_token": token}
            response = signed_in.post(action, data=body, files=files)
            assert response.status_code == 403, (action, response.status_code)
            assert refusal in response.text, action
    with gateway.admin() as admin:
        assert admin.get(f"/admin/keys/{key_id}").json()["revoked_at"] is None
        stored = admin.get(f"/admin/routes/{route}").json()
        assert stored["variants"][0]["weight"] == 1.0 and stored["fallbacks"] == []
        assert not [k for k in admin.get("/admin/keys").json()["data"] if k["name"] == "forged"]
    assert signed_in.get("/console/keys").status_code == 200  # still signed in: the forged sign-out did nothing
    # With the session's token the upload gets past the check (to this gateway having no retriever to send it to).
    token = csrf_of(signed_in.get("/console/keys").text)
    sent = signed_in.post(
        "/console/collections/upload", data={"collection": "harbour", "csrf_token": token}, files=upload
    )
    assert sent.status_code == 503 and "GATEWAY_RETRIEVER_ADMIN_TOKEN" in sent.text


def test_the_smoke_check_opens_every_console_page():
    """``llmops_testkit.console.smoke`` (run by tests/test_demo.py on the platform ``llmops up`` starts) opens every
    page the app has that needs no parameter."""
    pages = {path for _, path in console_routes("GET") if "{" not in path and path != "/console/login"}
    assert pages == set(CONSOLE_PAGES)


@postgres_only
def test_a_key_secret_is_shown_once_and_revoking_works(platform, signed_in):
    gateway, _ = platform
    created = post_form(
        signed_in,
        "/console/keys",
        "/console/keys",
        {"name": "console-made", "rpm": "60", "tpd": "5000", "allowed_collections": "kb, faq"},
    )
    assert created.status_code == 201
    secret = re.search(r"data-secret[^>]*>", created.text) and re.search(r'value="([^"]+)" data-secret', created.text)
    assert secret, created.text
    secret = secret.group(1)
    key = next(k for k in gateway.admin().get("/admin/keys").json()["data"] if k["name"] == "console-made")
    assert key["limits"] == {"rpm": 60, "tpm": None, "tpd": 5000, "max_tokens": None} and secret.startswith(
        key["prefix"]
    )
    assert key["allowed_collections"] == ["kb", "faq"] and "<td>kb, faq</td>" in signed_in.get("/console/keys").text
    with gateway.client(secret) as client:  # the secret shown is a working key
        assert client.get("/v1/models").status_code == 200
    for path in ("/console/keys", "/console/", "/console/playground", "/console/routes", "/console/spend"):
        assert secret not in signed_in.get(path).text

    assert post_form(signed_in, "/console/keys", f"/console/keys/{key['id']}/revoke").status_code == 303
    assert gateway.admin().get(f"/admin/keys/{key['id']}").json()["revoked_at"] is not None
    assert "revoked" in signed_in.get("/console/keys").text


@postgres_only
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "name: String should have at least 1 character"),
        ({"name": "x", "rpm": "lots"}, "RPM: 'lots' is not a whole number"),
        ({"name": "x", "tpm": "0"}, "limits.tpm: Input should be greater than or equal to 1"),
        ({"name": "x" * 201}, "name: String should have at most 200 characters"),
        ({"name": "x", "allowed_collections": "kb, no/slash"}, "allowed_collections.1: String should match pattern"),
    ],
)
def test_bad_key_input_is_explained(platform, signed_in, fields, message):
    response = post_form(signed_in, "/console/keys", "/console/keys", fields)
    assert response.status_code == 400 and "The key was not created" in response.text
    assert message in response.text.replace("&#39;", "'")


@postgres_only
def test_editing_a_split_and_refusing_a_bad_one(platform, signed_in, upstreams):
    gateway, _ = platform
    route = gateway.put_route(
        variants=[variant("a", upstreams["alpha"], weight=1), variant("b", upstreams["beta"], weight=1)],
        fallbacks=["b"],
    )
    saved = post_form(
        signed_in, "/console/routes", f"/console/routes/{route}/split", {"weight:a": "3", "weight:b": "1"}
    )
    assert saved.status_code == 303
    stored = gateway.admin().get(f"/admin/routes/{route}").json()
    assert [(v["name"], v["weight"]) for v in stored["variants"]] == [("a", 3.0), ("b", 1.0)]
    assert stored["fallbacks"] == ["b"]  # the rest of the route stays as it was
    page = signed_in.get(saved.headers["location"]).text
    assert f"Saved the split of route {route}" in page and "75%" in page and "25%" in page

    for weights, message in (
        ({"weight:a": "-1", "weight:b": "1"}, "greater than or equal to 0"),
        ({"weight:a": "0", "weight:b": "0"}, "at least one variant needs a positive weight"),
        ({"weight:a": "many", "weight:b": "1"}, "Weight of a: 'many' is not a number"),
        ({"weight:a": "nan", "weight:b": "1"}, "finite number"),
    ):
        refused = post_form(signed_in, "/console/routes", f"/console/routes/{route}/split", weights)
        assert refused.status_code == 400, weights
        assert message in refused.text.replace("&#39;", "'"), refused.text
    stored = gateway.admin().get(f"/admin/routes/{route}").json()
    assert [v["weight"] for v in stored["variants"]] == [3.0, 1.0]
    missing = post_form(signed_in, "/console/routes", "/console/routes/no-such-route/split", {"weight:a": "1"})
    assert missing.status_code == 404 and "not found" in missing.text and "<h1>" in missing.text  # a page, in words
    unknown_key = post_form(signed_in, "/console/keys", "/console/keys/key_nothing/revoke")
    assert unknown_key.status_code == 404 and "<h1>" in unknown_key.text


@postgres_only
def test_bad_filters_and_unknown_records_are_explained(platform, signed_in):
    bad_rating = signed_in.get("/console/feedback", params={"rating": "meh"})
    assert bad_rating.status_code == 400 and "rating must be one of" in bad_rating.text
    bad_time = signed_in.get("/console/feedback", params={"since": "yesterday"})
    assert bad_time.status_code == 400 and "is not a date and time" in bad_time.text
    backwards = signed_in.get("/console/feedback", params={"since": "2026-01-02T00:00", "until": "2026-01-01T00:00"})
    assert backwards.status_code == 400
    unknown = signed_in.get("/console/feedback/requests/never-happened")
    assert unknown.status_code == 404 and "not found" in unknown.text
    assert csrf_of(signed_in.get("/console/feedback").text)  # the page renders (and signs out by form)


@postgres_only
def test_experiments_pages_read_the_feedback_service(platform, signed_in):
    listing = signed_in.get("/console/experiments")
    assert listing.status_code == 200 and "No experiments yet" in listing.text
    unknown = signed_in.get("/console/experiments/no-such-experiment")
    assert unknown.status_code == 404 and "feedback" in unknown.text


@postgres_only
def test_a_gateway_without_a_feedback_service_explains_instead_of_failing(gateway):
    """The session's gateway: no feedback service, no retriever."""
    with console_client(gateway.url) as client:
        sign_in(client, gateway.admin_token)
        overview = client.get("/console/")
        assert overview.status_code == 200 and "not configured on this gateway" in overview.text
        for path in ("/console/feedback", "/console/experiments"):
            response = client.get(path)
            assert response.status_code == 503 and "not configured on this gateway" in response.text
        playground = client.get("/console/playground")
        assert playground.status_code == 200 and "no retriever configured" in playground.text


@postgres_only
def test_names_are_shown_as_text_never_as_markup(platform, signed_in):
    gateway, _ = platform
    gateway.create_key(name='<script>alert("key")</script>')
    page = signed_in.get("/console/keys").text
    assert '<script>alert("key")</script>' not in page
    assert "&lt;script&gt;alert(&#34;key&#34;)&lt;/script&gt;" in page


@postgres_only
def test_a_session_is_one_across_replicas(make_gateway, sql_url):
    """Sessions live in Redis: signed in on one replica is signed in on all, and signing out on one ends it on all."""
    gateway = make_gateway(sql_url=sql_url, replicas=2)
    first, second = (replica.url for replica in gateway.replicas)
    with console_client(first) as on_first, console_client(second) as on_second:
        assert sign_in(on_first, gateway.admin_token).status_code == 303
        on_second.cookies.set("llmops_console", on_first.cookies["llmops_console"], path="/console/")
        assert on_second.get("/console/keys").status_code == 200
        assert post_form(on_second, "/console/keys", "/console/logout").status_code == 303
        assert on_first.get("/console/keys").status_code == 303  # back to the sign-in page


@postgres_only
def test_a_request_shows_its_ratings_and_judge_scores_and_the_overview_errors(platform, signed_in):
    _, feedback = platform
    request_id, now = uuid.uuid4().hex, time.time()
    record = {"request_id": request_id, "user_hash": "u", "key_id": "key_console", "route": "r", "variant": "v",
              "model": "m", "status": 200, "started_at": now, "finished_at": now}  # fmt: skip
    route = f"errors-{request_id[:8]}"
    failed = [{**record, "request_id": uuid.uuid4().hex, "route": route, "status": status} for status in (200, 502)]
    with feedback.ingest() as ingest:
        assert ingest.post("/v1/requests", json={"records": [record, *failed]}).status_code == 200
    with feedback.admin() as admin:
        assert admin.post("/v1/feedback", json={"request_id": request_id, "rating": "down"}).status_code == 201
        score = {"request_id": request_id, "rubric": "correctness", "scorer": "offline-judge", "score": 0.25,
                 "rationale": "<b>cites nothing</b>"}  # fmt: skip
        assert admin.post("/v1/evaluations/scores", json=score).status_code == 201
    page = signed_in.get(f"/console/feedback/requests/{request_id}")
    assert page.status_code == 200
    scores = page.text.split('id="scores"')[1]
    assert "correctness" in scores and "offline-judge" in scores and "0.25" in scores
    assert "&lt;b&gt;cites nothing&lt;/b&gt;" in scores  # a judge's words are text, never markup
    assert "down" in page.text.split('id="ratings"')[1]
    overview = signed_in.get("/console/").text
    assert "Errors per variant: " in overview and f"{route}/v 1" in overview.split("Errors per variant")[1]


@postgres_only
def test_a_team_admin_reads_its_own_teams_requests_only(platform, signed_in):
    """The feedback browser narrowed to the team's keys (the feedback service filters by them); another team's
    request is not listed, not found by its id, and not reached by asking for that team's key."""
    gateway, feedback = platform
    team, other = create_team(gateway), create_team(gateway)
    ours, _ = gateway.create_key(name=unique("ours"), team=team)
    theirs, _ = gateway.create_key(name=unique("theirs"), team=other)
    route, now = unique("team-route"), time.time()
    made = {key: uuid.uuid4().hex for key in (ours, theirs)}
    records = [{"request_id": request_id, "user_hash": "u", "key_id": key, "route": route, "variant": "v",
                "model": "m", "status": 200, "started_at": now, "finished_at": now}
               for key, request_id in made.items()]  # fmt: skip
    with feedback.ingest() as ingest:
        assert ingest.post("/v1/requests", json={"records": records}).status_code == 200
    everyone = signed_in.get("/console/feedback", params={"route": route}).text
    assert made[ours] in everyone and made[theirs] in everyone  # the platform admin reads every team's
    with gateway.admin() as admin:
        identity = {"name": unique("team-admin"), "role": "team-admin", "team": team}
        token = admin.post("/admin/identities", json=identity).json()["token"]
    with console_client(gateway.url) as client:
        assert sign_in(client, token).status_code == 303
        listed = client.get("/console/feedback", params={"route": route})
        assert listed.status_code == 200 and made[ours] in listed.text and made[theirs] not in listed.text
        assert "Quality summary" not in listed.text  # it counts every team's requests
        by_their_key = client.get("/console/feedback", params={"route": route, "key": theirs}).text
        assert made[theirs] not in by_their_key and "No requests match." in by_their_key
        assert client.get(f"/console/feedback/requests/{made[ours]}").status_code == 200
        unknown = client.get(f"/console/feedback/requests/{made[theirs]}")
        assert unknown.status_code == 404 and "not found" in unknown.text
