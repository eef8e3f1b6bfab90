"""Ratings that come before their request's record (202, pending), attached when it arrives, exactly once; and
idempotent redelivery (the gateway replays ratings from its spool after an outage)."""

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

KEY_HEADER = "x-llmops-key-id"
RATED_AT_HEADER = "x-llmops-rated-at"


def wait_for(check, *, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return result


@pytest.fixture
def service(own_feedback):
    """A feedback service of this module's own: its counters see only these tests."""
    return own_feedback


@pytest.fixture
def as_key(service):
    """Rates as the gateway does for a key: the ingest token and the key's id in a header."""
    clients = []

    def rate(key_id: str, request_id: str, rating: str = "up", *, rated_at: float | None = None, **fields):
        client = service.ingest()
        clients.append(client)
        headers = {KEY_HEADER: key_id} | ({RATED_AT_HEADER: repr(rated_at)} if rated_at is not None else {})
        body = {"request_id": request_id, "rating": rating, **fields}
        return client.post("/v1/feedback", json=body, headers=headers)

    yield rate
    for client in clients:
        client.close()


@pytest.fixture
def store(service):
    def post(*records: dict) -> None:
        with service.ingest() as client:
            response = client.post("/v1/requests", json={"records": list(records)})
        assert response.status_code == 200, response.text

    return post


def history(service, request_id: str) -> list[dict]:
    with service.admin() as admin:
        response = admin.get(f"/v1/requests/{request_id}")
    assert response.status_code == 200, response.text
    return response.json()["rating_history"]


def metric(scrape, service, name: str, **labels) -> float:
    return scrape(service.url).get((name, frozenset(labels.items())), 0.0)


def test_a_rating_before_its_record_is_202_and_attaches_when_the_record_arrives(
    service, as_key, store, make_record, scrape
):
    record = make_record(key_id="key_alice")
    before = metric(scrape, service, "llmops_feedback_ratings_total", route=record["route"], variant="a", rating="up")
    response = as_key("key_alice", record["request_id"], "up", comment="quick", idempotency_key="click-1")
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert set(accepted) == {"status", "request_id", "rating", "idempotency_key", "message"}
    assert accepted["status"] == "pending" and accepted["request_id"] == record["request_id"]
    assert accepted["rating"] == "up" and accepted["idempotency_key"] == "click-1"
    assert "accepted for delivery" in accepted["message"]

    store(record)
    [rating] = history(service, record["request_id"])
    assert (rating["rating"], rating["comment"], rating["current"], rating["idempotency_key"]) == (
        "up",
        "quick",
        True,
        "click-1",
    )
    after = metric(scrape, service, "llmops_feedback_ratings_total", route=record["route"], variant="a", rating="up")
    assert after == before + 1
    # Delivered again once attached: the stored rating, not a second one.
    again = as_key("key_alice", record["request_id"], "up", comment="quick", idempotency_key="click-1")
    assert again.status_code == 201 and again.json() == rating
    assert len(history(service, record["request_id"])) == 1


def test_a_pending_rating_of_another_keys_request_is_discarded_and_counted(service, as_key, store, make_record, scrape):
    record = make_record(key_id="key_alice")
    before = metric(scrape, service, "llmops_feedback_pending_ratings_discarded_total", reason="other_key")
    assert as_key("key_bob", record["request_id"], "down").status_code == 202
    store(record)
    assert history(service, record["request_id"]) == []
    after = metric(scrape, service, "llmops_feedback_pending_ratings_discarded_total", reason="other_key")
    assert after == before + 1
    # Now that the record is there, bob's answer is still the same 202, and still nothing attaches.
    assert as_key("key_bob", record["request_id"], "down").status_code == 202
    assert history(service, record["request_id"]) == []


def test_redelivered_ratings_are_stored_once(service, as_key, store, make_record, scrape):
    pending, logged = make_record(key_id="key_alice"), make_record(key_id="key_alice")
    store(logged)
    duplicates = metric(scrape, service, "llmops_feedback_ratings_duplicate_total")
    first = as_key("key_alice", logged["request_id"], "down", idempotency_key="r-1")
    assert first.status_code == 201
    for _ in range(3):
        assert as_key("key_alice", logged["request_id"], "down", idempotency_key="r-1").json() == first.json()
    for _ in range(3):
        assert as_key("key_alice", pending["request_id"], "up", idempotency_key="r-2").status_code == 202
    store(pending)
    store(pending)  # the record delivered twice, too
    assert [r["idempotency_key"] for r in history(service, logged["request_id"])] == ["r-1"]
    assert [r["idempotency_key"] for r in history(service, pending["request_id"])] == ["r-2"]
    assert metric(scrape, service, "llmops_feedback_ratings_duplicate_total") == duplicates + 5


def test_idempotency_keys_are_per_key(service, as_key, store, make_record):
    """Bob cannot shadow (or learn of) alice's rating by reusing her idempotency key."""
    alices, bobs = make_record(key_id="key_alice"), make_record(key_id="key_bob")
    store(alices, bobs)
    assert as_key("key_alice", alices["request_id"], "up", idempotency_key="same").status_code == 201
    bob = as_key("key_bob", bobs["request_id"], "down", idempotency_key="same")
    assert bob.status_code == 201 and bob.json()["request_id"] == bobs["request_id"]
    assert [r["rating"] for r in history(service, bobs["request_id"])] == ["down"]


def test_the_newest_rating_by_when_it_was_given_is_current(service, as_key, store, make_record):
    """A rating replayed late from the gateway's spool does not overrule one given after it."""
    record = make_record(key_id="key_alice")
    store(record)
    now = time.time()
    assert as_key("key_alice", record["request_id"], "down", rated_at=now).status_code == 201
    assert as_key("key_alice", record["request_id"], "up", rated_at=now - 60).status_code == 201
    ratings = history(service, record["request_id"])
    assert [(r["rating"], r["current"]) for r in ratings] == [("down", True), ("up", False)]


@pytest.mark.parametrize("value", ["yesterday", "nan", "-1", "1e20"])
def test_a_bad_rated_at_header_is_400(service, as_key, make_record, expect_error, value):
    with service.ingest() as client:
        response = client.post(
            "/v1/feedback",
            json={"request_id": make_record()["request_id"], "rating": "up"},
            headers={KEY_HEADER: "key_alice", RATED_AT_HEADER: value},
        )
    expect_error(response, 400, code="invalid_rated_at")


def test_a_key_id_too_long_to_store_is_400(as_key, make_record, expect_error):
    expect_error(as_key("k" * 65, make_record()["request_id"], "up"), 400, code="invalid_key_id")


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "ünï"])
def test_a_bad_idempotency_key_is_422(as_key, make_record, expect_error, key):
    response = as_key("key_alice", make_record()["request_id"], "up", idempotency_key=key)
    assert expect_error(response, 422, code="invalid_request")["param"] == "idempotency_key"


def test_ratings_racing_their_records_attach_exactly_once(service, make_record):
    """Each rating sent at the moment its record is stored (the gateway's batch lands as the client clicks): every
    one ends up attached once, whichever side wins."""
    records = [make_record(key_id="key_alice") for _ in range(24)]
    start = threading.Barrier(2)

    def rate_all():
        with service.ingest() as client:
            start.wait(timeout=30)
            for record in records:
                body = {"request_id": record["request_id"], "rating": "up", "idempotency_key": record["request_id"]}
                response = client.post("/v1/feedback", json=body, headers={KEY_HEADER: "key_alice"})
                assert response.status_code in (201, 202), response.text

    def store_all():
        with service.ingest() as client:
            start.wait(timeout=30)
            for record in records:
                assert client.post("/v1/requests", json={"records": [record]}).status_code == 200

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(rate_all), pool.submit(store_all)]:
            future.result()
    for record in records:
        assert [r["current"] for r in history(service, record["request_id"])] == [True], record["request_id"]


# SQLite only: the loss it catches came from SQLite giving a deleted row's id to the next insert (PostgreSQL's
# sequences never do; the race above runs on both). Without the fix about 1 round in 20 lost a rating: 48 rounds.
@pytest.mark.parametrize("sql_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("delay_ms", range(48))
def test_ratings_held_together_while_their_batch_lands_are_all_attached(service, make_record, delay_ms):
    """Eight clients rate at once as their records' batch lands (the demo's case: answers that end together). Each
    rating is held or stored, then attached by its own call or by the batch's ingest: none may be lost. A deleted
    pending row's id went to the next held rating, and a stale read then deleted that one unattached."""
    records = [make_record(key_id="key_alice") for _ in range(8)]
    start = threading.Barrier(len(records) + 1)

    def rate(record):
        with service.ingest() as client:
            start.wait(timeout=30)
            body = {"request_id": record["request_id"], "rating": "up"}
            return client.post("/v1/feedback", json=body, headers={KEY_HEADER: "key_alice"}).status_code

    def store_all():
        with service.ingest() as client:
            start.wait(timeout=30)
            time.sleep(delay_ms / 1000)
            return client.post("/v1/requests", json={"records": records}).status_code

    with ThreadPoolExecutor(len(records) + 1) as pool:
        futures = [pool.submit(rate, record) for record in records] + [pool.submit(store_all)]
        *rated, stored = [future.result() for future in futures]
    assert stored == 200 and set(rated) <= {201, 202}, (stored, rated)
    for record in records:
        assert [r["current"] for r in history(service, record["request_id"])] == [True], record["request_id"]


def test_pending_ratings_whose_record_never_comes_expire_and_are_counted(
    make_feedback, new_database, make_record, scrape
):
    service = make_feedback(sql_url=new_database(), FEEDBACK_PENDING_RATING_TTL_S="0.5", FEEDBACK_PENDING_SWEEP_S="0.2")
    late = make_record(key_id="key_alice")
    with service.ingest() as client:
        for request_id in (uuid.uuid4().hex, late["request_id"]):
            response = client.post(
                "/v1/feedback", json={"request_id": request_id, "rating": "up"}, headers={KEY_HEADER: "key_alice"}
            )
            assert response.status_code == 202
        wait_for(
            lambda: metric(scrape, service, "llmops_feedback_pending_ratings_discarded_total", reason="expired") == 2,
            timeout_s=10,
            what="both pending ratings to expire",
        )
        assert metric(scrape, service, "llmops_feedback_pending_ratings_waiting") == 0
        assert client.post("/v1/requests", json={"records": [late]}).status_code == 200
    assert history(service, late["request_id"]) == []  # too late: it was discarded
