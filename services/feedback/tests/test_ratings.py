"""Thumbs ratings: rating again replaces the current rating and keeps history; a key rates only its own requests.
(Ratings that come before their request's record, and idempotent redelivery: ``test_pending_ratings.py``.)"""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest

from llmops_feedback.ratings.schemas import MAX_COMMENT_CHARS, MAX_CORRECTION_CHARS

KEY_HEADER = "x-llmops-key-id"


@pytest.fixture
def logged(make_record, ingest) -> dict:
    """A logged request made by key ``key_alice``."""
    record = make_record(key_id="key_alice")
    ingest(record)
    return record


def _history(admin, request_id: str) -> dict:
    response = admin.get(f"/v1/requests/{request_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_rate_up_is_201_with_the_rating(admin, logged):
    response = admin.post("/v1/feedback", json={"request_id": logged["request_id"], "rating": "up", "comment": "nice"})
    assert response.status_code == 201, response.text
    rating = response.json()
    assert set(rating) == {
        "id",
        "request_id",
        "rating",
        "comment",
        "correction",
        "current",
        "created_at",
        "idempotency_key",
    }
    assert rating["idempotency_key"]  # generated: none was given
    assert (rating["request_id"], rating["rating"], rating["comment"]) == (logged["request_id"], "up", "nice")
    assert rating["correction"] is None and rating["current"] is True
    assert datetime.fromisoformat(rating["created_at"]).tzinfo is not None
    assert _history(admin, logged["request_id"])["rating"] == rating


def test_rating_again_replaces_the_current_rating_and_keeps_history(admin, rate, logged, route):
    first = rate(logged["request_id"], "up", comment="good")
    second = rate(logged["request_id"], "down", comment="on second thought", correction="a better answer")
    third = rate(logged["request_id"], "down")
    stored = _history(admin, logged["request_id"])
    assert stored["rating"] == third
    history = stored["rating_history"]
    assert [r["id"] for r in history] == [first["id"], second["id"], third["id"]]
    assert [r["current"] for r in history] == [False, False, True]
    assert [(r["rating"], r["comment"], r["correction"]) for r in history] == [
        ("up", "good", None),
        ("down", "on second thought", "a better answer"),
        ("down", None, None),
    ]
    summary = admin.get("/v1/quality", params={"route": route}).json()["variants"]
    assert [(v["rated"], v["up"], v["down"]) for v in summary] == [(1, 0, 1)]  # counted once, as its current rating


def test_unknown_request_is_404(admin, expect_error):
    response = admin.post("/v1/feedback", json={"request_id": uuid.uuid4().hex, "rating": "up"})
    expect_error(response, 404, code="request_not_found", type="not_found_error")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"rating": "meh"}, id="rating-meh"),
        pytest.param({"rating": "UP"}, id="rating-upper-case"),
        pytest.param({"rating": 1}, id="rating-a-number"),
        pytest.param({"rating": None}, id="rating-null"),
        pytest.param({"request_id": ""}, id="empty-request-id"),
        pytest.param({"request_id": "x" * 129}, id="long-request-id"),
        pytest.param({"comment": "x" * (MAX_COMMENT_CHARS + 1)}, id="oversize-comment"),
        pytest.param({"correction": "x" * (MAX_CORRECTION_CHARS + 1)}, id="oversize-correction"),
        pytest.param({"correction": ""}, id="empty-correction"),
        pytest.param({"stars": 5}, id="extra-field"),
    ],
)
def test_bad_ratings_are_422_and_change_nothing(admin, logged, expect_error, change):
    body = {"request_id": logged["request_id"], "rating": "up", **change}
    error = expect_error(
        admin.post("/v1/feedback", json=body), 422, code="invalid_request", type="invalid_request_error"
    )
    assert error["param"]  # names the offending field
    assert _history(admin, logged["request_id"])["rating_history"] == []


@pytest.mark.parametrize("missing", ["request_id", "rating"])
def test_missing_fields_are_422(admin, logged, expect_error, missing):
    body = {k: v for k, v in {"request_id": logged["request_id"], "rating": "up"}.items() if k != missing}
    assert expect_error(admin.post("/v1/feedback", json=body), 422, code="invalid_request")["param"] == missing


def test_comment_and_correction_at_their_limits_are_taken(rate, logged):
    rating = rate(logged["request_id"], "down", comment="c" * MAX_COMMENT_CHARS, correction="é" * MAX_CORRECTION_CHARS)
    assert len(rating["comment"]) == MAX_COMMENT_CHARS and len(rating["correction"]) == MAX_CORRECTION_CHARS


def test_a_nul_character_in_a_comment_is_taken_or_refused_never_500(feedback, logged):
    """PostgreSQL text cannot hold U+0000; clients send what they like (the gateway turns a 500 into a 503)."""
    response = httpx.post(
        f"{feedback.url}/v1/feedback",
        json={"request_id": logged["request_id"], "rating": "down", "comment": "a\u0000b", "correction": "c\u0000d"},
        headers={"authorization": f"Bearer {feedback.admin_token}"},
    )
    assert response.status_code in (201, 422), response.text


def test_non_json_body_is_4xx(feedback):
    response = httpx.post(
        f"{feedback.url}/v1/feedback",
        content=b"up!",
        headers={"authorization": f"Bearer {feedback.admin_token}", "content-type": "application/json"},
    )
    assert response.status_code in (400, 422) and response.json()["error"]["type"] == "invalid_request_error"


def test_the_gateway_rates_for_the_key_that_made_the_request(ingester, admin, logged):
    response = ingester.post(
        "/v1/feedback", json={"request_id": logged["request_id"], "rating": "up"}, headers={KEY_HEADER: "key_alice"}
    )
    assert response.status_code == 201, response.text
    assert _history(admin, logged["request_id"])["rating"]["id"] == response.json()["id"]


def test_another_key_sees_the_request_as_unknown(ingester, admin, rate, logged):
    """A key's rating of a request it did not make is answered as one for a request not logged yet (202, waiting
    for its record), and never attached."""
    rate(logged["request_id"], "up", comment="the admin's")
    unknown_id = uuid.uuid4().hex
    answers = []
    for request_id in (logged["request_id"], unknown_id):
        response = ingester.post(
            "/v1/feedback", json={"request_id": request_id, "rating": "down"}, headers={KEY_HEADER: "key_bob"}
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["request_id"] == request_id and body["status"] == "pending"
        answers.append({k: v for k, v in body.items() if k not in ("request_id", "idempotency_key")})
    # Word for word what an unknown id gets: nothing tells bob that alice's request exists.
    assert answers[0] == answers[1]
    history = _history(admin, logged["request_id"])["rating_history"]
    assert [(r["rating"], r["current"]) for r in history] == [("up", True)]


def test_a_request_without_a_key_cannot_be_rated_for_a_key(make_record, ingest, ingester, admin):
    record = make_record(key_id=None)
    ingest(record)
    response = ingester.post(
        "/v1/feedback", json={"request_id": record["request_id"], "rating": "up"}, headers={KEY_HEADER: "key_alice"}
    )
    assert response.status_code == 202, response.text
    assert _history(admin, record["request_id"])["rating_history"] == []


@pytest.mark.parametrize("header", [None, ""])
def test_the_ingest_token_needs_the_key_header(ingester, logged, expect_error, header):
    headers = {KEY_HEADER: header} if header is not None else {}
    response = ingester.post("/v1/feedback", json={"request_id": logged["request_id"], "rating": "up"}, headers=headers)
    expect_error(response, 400, code="missing_key_id", type="invalid_request_error")


def test_the_admin_rates_any_request_whatever_the_header(admin, make_record, ingest):
    records = [make_record(key_id="key_carol"), make_record(key_id=None)]
    ingest(*records)
    for record in records:
        response = admin.post(
            "/v1/feedback", json={"request_id": record["request_id"], "rating": "down"}, headers={KEY_HEADER: "key_bob"}
        )
        assert response.status_code == 201, response.text


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Bearer key_alice"])
def test_rating_needs_a_token(feedback, logged, expect_error, authorization):
    headers = {KEY_HEADER: "key_alice"} | ({"authorization": authorization} if authorization else {})
    response = httpx.post(
        f"{feedback.url}/v1/feedback", json={"request_id": logged["request_id"], "rating": "up"}, headers=headers
    )
    expect_error(response, 401, code="invalid_token", type="authentication_error")


def test_concurrent_ratings_leave_exactly_one_current(feedback, admin, make_record, ingest, route):
    """A double click, or two tabs: ratings of one request racing each other, all let go at once."""
    records = [make_record() for _ in range(3)]
    ingest(*records)
    clients = [feedback.admin() for _ in range(12)]
    for client in clients:
        client.get("/healthz").raise_for_status()  # connections open before the race starts
    start = threading.Barrier(len(clients))

    def rate(job: tuple[httpx.Client, str, int]) -> int:
        client, request_id, n = job
        start.wait(timeout=30)
        return client.post(
            "/v1/feedback", json={"request_id": request_id, "rating": "up" if n % 2 else "down"}
        ).status_code

    try:
        with ThreadPoolExecutor(len(clients)) as pool:
            for record in records:
                jobs = [(client, record["request_id"], n) for n, client in enumerate(clients)]
                assert list(pool.map(rate, jobs)) == [201] * len(clients)
    finally:
        for client in clients:
            client.close()
    for record in records:
        history = _history(admin, record["request_id"])["rating_history"]
        assert len(history) == len(clients)
        assert sum(r["current"] for r in history) == 1, [r["id"] for r in history if r["current"]]
    variants = admin.get("/v1/quality", params={"route": route}).json()["variants"]
    assert [(v["requests"], v["rated"]) for v in variants] == [(3, 3)]
