"""``POST /v1/feedback`` at the gateway, with the real feedback service behind it: a rating is accepted from the
moment the answer ends (also while the feedback service is down) and lands exactly once, on the key's own request.
"""

import time
import uuid

import httpx
import pytest

from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.processes import start_together

pytestmark = postgres_only  # delivery to the feedback service, not the gateway's store


def wait_for(check, *, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def ratings_of(feedback, request_id: str) -> list[dict] | None:
    """The request's rating history at the feedback service; None while its record has not arrived."""
    with feedback.admin() as admin:
        response = admin.get(f"/v1/requests/{request_id}")
    return response.json()["rating_history"] if response.status_code == 200 else None


def gauge(gateway, name: str) -> float:
    for line in httpx.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return -1.0


def complete(client: httpx.Client, route: str, *, stream: bool) -> str:
    """A completion read to its very end; its request id."""
    body = chat_body(route, content=f"question {uuid.uuid4().hex[:6]}", stream=stream)
    if not stream:
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        return response.headers["x-request-id"]
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    assert text.rstrip().endswith("data: [DONE]")
    return response.headers["x-request-id"]


def feedback_and_gateway(make_gateway, sql_url, make_feedback, feedback_sql_url):
    """A feedback service and a gateway that sends it ratings and records, started side by side."""
    feedback = make_feedback(sql_url=feedback_sql_url, start=False)
    gateway = make_gateway(sql_url=sql_url, **feedback.gateway_env(), start=False)
    start_together(feedback, gateway)
    return gateway, feedback


@pytest.fixture(scope="module")
def platform(make_gateway, sql_url, make_feedback, feedback_sql_url, _fake_upstreams):
    return feedback_and_gateway(make_gateway, sql_url, make_feedback, feedback_sql_url)


@pytest.fixture
def route(platform, upstreams):
    return platform[0].put_route(variants=[variant("a", upstreams["alpha"])])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_rating_right_after_the_answer_is_accepted_and_lands(platform, route, stream):
    gateway, feedback = platform
    _, key = gateway.create_key()
    with gateway.client(key) as client:
        request_id = complete(client, route, stream=stream)
        rated = client.post("/v1/feedback", json={"request_id": request_id, "rating": "up", "comment": "at once"})
    # 202 "pending" while the record is still on its way (it used to be 404), 201 if it was there already.
    assert rated.status_code in (201, 202), rated.text
    assert rated.json()["request_id"] == request_id and rated.headers["x-request-id"]
    if rated.status_code == 202:
        assert rated.json()["status"] == "pending" and rated.json()["message"].startswith("accepted for delivery")
    idempotency_key = rated.json()["idempotency_key"]
    history = wait_for(lambda: ratings_of(feedback, request_id), timeout_s=10, what="the rating to land")
    assert [(r["rating"], r["comment"], r["current"], r["idempotency_key"]) for r in history] == [
        ("up", "at once", True, idempotency_key)
    ]


def test_a_rating_sent_again_with_its_idempotency_key_is_stored_once(platform, route):
    gateway, feedback = platform
    _, key = gateway.create_key()
    with gateway.client(key) as client:
        request_id = complete(client, route, stream=False)
        wait_for(lambda: ratings_of(feedback, request_id) is not None, timeout_s=10, what="the record")
        body = {"request_id": request_id, "rating": "down", "idempotency_key": "tab-1-click-1"}
        answers = [client.post("/v1/feedback", json=body) for _ in range(3)]
    assert [a.status_code for a in answers] == [201] * 3
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert [r["idempotency_key"] for r in ratings_of(feedback, request_id)] == ["tab-1-click-1"]


def test_another_keys_request_is_never_rated(platform, route):
    gateway, feedback = platform
    _, owner = gateway.create_key()
    _, stranger = gateway.create_key()
    with gateway.client(owner) as client:
        request_id = complete(client, route, stream=False)
    with gateway.client(stranger) as client:  # at once (the record on its way), and once it has landed
        early = client.post("/v1/feedback", json={"request_id": request_id, "rating": "down"})
        wait_for(lambda: ratings_of(feedback, request_id) is not None, timeout_s=10, what="the record")
        late = client.post("/v1/feedback", json={"request_id": request_id, "rating": "down"})
    assert (early.status_code, late.status_code) == (202, 202)
    time.sleep(0.3)
    assert ratings_of(feedback, request_id) == []


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"request_id": "x", "rating": "meh"}, 422, "rating"),
        ({"request_id": "x", "rating": "up", "stars": 5}, 422, "stars"),
        ({"request_id": "x", "rating": "up", "idempotency_key": "no spaces"}, 422, "idempotency_key"),
        ({"rating": "up"}, 422, "request_id"),
        (b"{nope", 400, None),
        (b"[1]", 400, None),
    ],
    ids=["bad-rating", "extra-field", "bad-idempotency-key", "no-request-id", "not-json", "not-an-object"],
)
def test_bad_ratings_get_the_openai_error_body(platform, body, status, param):
    gateway, _ = platform
    _, key = gateway.create_key()
    with gateway.client(key) as client:
        if isinstance(body, bytes):
            response = client.post("/v1/feedback", content=body, headers={"content-type": "application/json"})
        else:
            response = client.post("/v1/feedback", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"} and error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_ratings_during_a_feedback_outage_are_202_and_land_exactly_once(
    make_gateway, sql_url, make_feedback, feedback_sql_url, upstreams
):
    gateway, feedback = feedback_and_gateway(make_gateway, sql_url, make_feedback, feedback_sql_url)
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    _, key = gateway.create_key()
    _, stranger = gateway.create_key()
    feedback.stop()

    with gateway.client(key) as client:
        whole, streamed = complete(client, route, stream=False), complete(client, route, stream=True)
        first = client.post("/v1/feedback", json={"request_id": whole, "rating": "up", "idempotency_key": "w-1"})
        again = client.post("/v1/feedback", json={"request_id": whole, "rating": "up", "idempotency_key": "w-1"})
        changed = client.post("/v1/feedback", json={"request_id": whole, "rating": "down", "comment": "no, wrong"})
        on_stream = client.post("/v1/feedback", json={"request_id": streamed, "rating": "up"})
        invalid = client.post("/v1/feedback", json={"request_id": whole, "rating": "meh"})
    with gateway.client(stranger) as client:
        foreign = client.post("/v1/feedback", json={"request_id": whole, "rating": "down"})

    for accepted in (first, again, changed, on_stream, foreign):
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["status"] == "queued" and "accepted for delivery" in accepted.json()["message"]
    assert first.json()["idempotency_key"] == again.json()["idempotency_key"] == "w-1"
    assert invalid.status_code == 422  # bad input is refused now, outage or not
    assert gauge(gateway, "llmops_gateway_ratings_spooled") == 5

    # Kept on disk: a gateway restart mid-outage loses none of them.
    gateway.stop()
    gateway.start()
    assert gauge(gateway, "llmops_gateway_ratings_spooled") == 5
    feedback.start()

    wait_for(lambda: gauge(gateway, "llmops_gateway_ratings_spooled") == 0, timeout_s=60, what="the spool to drain")
    assert not list((gateway.state_dir / "spool").glob("*.json*"))
    whole_history = ratings_of(feedback, whole)
    assert [(r["rating"], r["current"]) for r in whole_history] == [("up", False), ("down", True)]  # once each
    assert whole_history[0]["idempotency_key"] == "w-1" and whole_history[1]["comment"] == "no, wrong"
    assert [(r["rating"], r["current"]) for r in ratings_of(feedback, streamed)] == [("up", True)]
    assert not list((gateway.state_dir / "spool" / "rejected").iterdir())

    # The client, unsure, sends its rating again now that the service is back: still once.
    with gateway.client(key) as client:
        resent = client.post("/v1/feedback", json={"request_id": whole, "rating": "up", "idempotency_key": "w-1"})
    assert resent.status_code == 201 and resent.json()["id"] == whole_history[0]["id"]
    assert len(ratings_of(feedback, whole)) == 2
