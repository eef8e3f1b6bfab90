"""The request log: batches from the gateway are stored whole, idempotently on request id; bad input is a clear 4xx."""

import json
import math
import uuid
from datetime import datetime

import httpx
import pytest


@pytest.fixture(scope="module")
def strict_feedback(make_feedback, new_database):
    """A feedback process of its own that keeps no text and takes at most 3 records a batch."""
    return make_feedback(sql_url=new_database(), FEEDBACK_STORE_TEXT="false", FEEDBACK_MAX_BATCH="3")


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def test_a_batch_is_stored_with_all_fields(make_record, ingest, admin):
    chat = make_record(
        stream=True, retrieved_ids=["doc-1#0", "doc-2#3"], usage={"prompt_tokens": 7, "completion_tokens": 3}
    )
    text = make_record(
        kind="text",
        prompt="Once upon a time",
        answer=" there was",
        model="adapter-x",
        variant="b",
        key_id=None,
        latency_ms=None,
        ttft_ms=None,
    )
    failed = make_record(status=502, answer=None, error="upstream timed out", usage={})
    assert ingest(chat, text, failed) == {"inserted": 3, "duplicates": 0}
    for sent in (chat, text, failed):
        response = admin.get(f"/v1/requests/{sent['request_id']}")
        assert response.status_code == 200, response.text
        stored = response.json()
        for field in (
            "request_id",
            "key_id",
            "route",
            "variant",
            "model",
            "kind",
            "stream",
            "status",
            "prompt",
            "answer",
            "latency_ms",
            "ttft_ms",
            "retrieved_ids",
            "error",
        ):
            assert stored[field] == sent[field], field
        assert stored["prompt_tokens"] == sent["usage"].get("prompt_tokens", 0)
        assert stored["completion_tokens"] == sent["usage"].get("completion_tokens", 0)
        assert stored["redacted"] is False
        assert _epoch(stored["started_at"]) == pytest.approx(sent["started_at"], abs=1e-3)
        assert _epoch(stored["finished_at"]) == pytest.approx(sent["finished_at"], abs=1e-3)
        assert stored["rating"] is None and stored["rating_history"] == []


def test_a_record_keeps_its_prompt_name_and_version(make_record, ingest, admin):
    record = make_record(prompt_name="support-rag", prompt_version="7")
    ingest(record)
    stored = admin.get(f"/v1/requests/{record['request_id']}").json()
    assert (stored["prompt_name"], stored["prompt_version"]) == ("support-rag", "7")


def test_a_batch_line_keeps_its_batch_id(make_record, ingest, admin):
    """Records of the gateway's Batches API carry their batch; online records have none."""
    line, online = make_record(batch_id="batch_0123abcd"), make_record()
    assert ingest(line, online) == {"inserted": 2, "duplicates": 0}
    assert admin.get(f"/v1/requests/{line['request_id']}").json()["batch_id"] == "batch_0123abcd"
    assert admin.get(f"/v1/requests/{online['request_id']}").json()["batch_id"] is None


def test_delivering_a_batch_again_changes_nothing(own_feedback, make_record, ingest, route, scrape):
    """On a service of its own: the duplicate counter has no labels, so only here is its increase exactly ours."""
    first, second = make_record(), make_record()
    duplicates_before = scrape(own_feedback.url).get(("llmops_feedback_records_duplicate_total", frozenset()), 0)
    with own_feedback.ingest() as ingester, own_feedback.admin() as admin:
        assert ingest(first, second, client=ingester) == {"inserted": 2, "duplicates": 0}
        assert ingest(first, second, client=ingester) == {"inserted": 0, "duplicates": 2}
        # A replay after a partial delivery: one known record (changed on the way, which must not matter), one new.
        third = make_record()
        assert ingest({**first, "answer": "rewritten"}, third, client=ingester) == {"inserted": 1, "duplicates": 1}
        assert admin.get(f"/v1/requests/{first['request_id']}").json()["answer"] == first["answer"]
    metrics = scrape(own_feedback.url)
    labels = frozenset({"route": route, "variant": "a"}.items())
    assert metrics[("llmops_feedback_records_ingested_total", labels)] == 3
    assert metrics[("llmops_feedback_records_duplicate_total", frozenset())] - duplicates_before == 3


def test_a_batch_repeating_an_id_within_itself(make_record, ingest, admin):
    once, twice = make_record(), make_record()
    assert ingest(twice, once, twice) == {"inserted": 2, "duplicates": 1}
    stored = admin.get(f"/v1/requests/{twice['request_id']}").json()
    assert stored["answer"] == twice["answer"] and stored["rating_history"] == []
    assert ingest(twice) == {"inserted": 0, "duplicates": 1}


def test_the_largest_batch_allowed_by_default_is_taken(make_record, ingest, admin, route):
    records = [make_record() for _ in range(1000)]  # FEEDBACK_MAX_BATCH's default: one multi-row INSERT
    assert ingest(*records) == {"inserted": 1000, "duplicates": 0}
    summary = admin.get("/v1/quality", params={"route": route}).json()
    assert summary["variants"][0]["requests"] == 1000


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", "Basic dXNlcjpwYXNz", "Bearer"])
def test_ingest_needs_a_token(feedback, make_record, expect_error, authorization):
    headers = {"authorization": authorization} if authorization else {}
    response = httpx.post(f"{feedback.url}/v1/requests", json={"records": [make_record()]}, headers=headers)
    expect_error(response, 401, code="invalid_token", type="authentication_error")
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_ingest_token_cannot_read(feedback, make_record, ingest, ingester, expect_error):
    record = make_record()
    ingest(record)
    paths = [f"/v1/requests/{record['request_id']}", "/v1/quality", "/v1/datasets/sft", "/v1/datasets/preference"]
    for path in paths:
        expect_error(ingester.get(path), 401, code="invalid_token", type="authentication_error")
        expect_error(httpx.get(f"{feedback.url}{path}"), 401, code="invalid_token")


def _without(record: dict, field: str) -> dict:
    return {k: v for k, v in record.items() if k != field}


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r: _without(r, "request_id"), id="missing-request-id"),
        pytest.param(lambda r: {**r, "request_id": ""}, id="empty-request-id"),
        pytest.param(lambda r: {**r, "request_id": "x" * 129}, id="long-request-id"),
        pytest.param(lambda r: _without(r, "route"), id="missing-route"),
        pytest.param(lambda r: _without(r, "variant"), id="missing-variant"),
        pytest.param(lambda r: {**r, "status": 999}, id="status-999"),
        pytest.param(lambda r: {**r, "status": "ok"}, id="status-not-a-number"),
        pytest.param(lambda r: {**r, "kind": "image"}, id="unknown-kind"),
        pytest.param(lambda r: {**r, "prompt": {"role": "user"}}, id="prompt-an-object"),
        pytest.param(lambda r: {**r, "usage": {"prompt_tokens": -1}}, id="negative-tokens"),
        pytest.param(lambda r: {**r, "latency_ms": -5}, id="negative-latency"),
        pytest.param(lambda r: _without(r, "started_at"), id="missing-started-at"),
        pytest.param(lambda r: {**r, "started_at": "yesterday"}, id="started-at-not-a-number"),
        pytest.param(lambda r: {**r, "started_at": 1e20}, id="started-at-beyond-year-9999"),
        pytest.param(lambda r: {**r, "finished_at": -1e13}, id="finished-at-before-year-1"),
        pytest.param(lambda r: {**r, "started_at": math.nan}, id="started-at-nan"),
        pytest.param(lambda r: {**r, "latency_ms": math.inf}, id="latency-infinite"),
    ],
)
def test_bad_records_get_422(feedback, make_record, admin, expect_error, change):
    good, bad = make_record(), change(make_record())
    # A fresh connection each time: a 500 must not leave the next case on a connection the server dropped.
    # Python's json writes NaN and Infinity, as many clients do; the service's JSON parser reads them.
    response = httpx.post(
        f"{feedback.url}/v1/requests",
        content=json.dumps({"records": [good, bad]}),
        headers={"authorization": f"Bearer {feedback.ingest_token}", "content-type": "application/json"},
    )
    expect_error(response, 422, code="invalid_request", type="invalid_request_error")
    assert admin.get(f"/v1/requests/{good['request_id']}").status_code == 404  # the batch is all or nothing


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"records": []}', "application/json"),
        (b"{}", "application/json"),
        (b'{"records": "many"}', "application/json"),
        (b'[{"request_id": "x"}]', "application/json"),
        (b"this is not json", "application/json"),
        (b'{"records": [', "application/json"),
        (b"this is not json", "text/plain"),
        (b"", None),
    ],
)
def test_bad_bodies_are_4xx_never_500(feedback, expect_error, content, content_type):
    headers = {"authorization": f"Bearer {feedback.ingest_token}"}
    if content_type:
        headers["content-type"] = content_type
    response = httpx.post(f"{feedback.url}/v1/requests", content=content, headers=headers)
    assert response.status_code in (400, 422), response.text
    expect_error(response, response.status_code, type="invalid_request_error")


def test_extra_fields_in_a_record_are_ignored_but_not_in_the_batch(make_record, ingester, admin, expect_error):
    record = make_record(some_future_field={"x": 1})
    assert ingester.post("/v1/requests", json={"records": [record]}).json() == {"inserted": 1, "duplicates": 0}
    expect_error(ingester.post("/v1/requests", json={"records": [make_record()], "extra": 1}), 422)


@pytest.mark.parametrize("field", ["answer", "error"])
def test_a_nul_character_in_text_is_stored_or_refused_never_500(feedback, make_record, admin, field):
    """PostgreSQL text cannot hold U+0000; a model or a client can still produce it."""
    record = make_record(**{field: "before\u0000after"})
    response = httpx.post(
        f"{feedback.url}/v1/requests",
        json={"records": [record]},
        headers={"authorization": f"Bearer {feedback.ingest_token}"},
    )
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        assert admin.get(f"/v1/requests/{record['request_id']}").status_code == 200


def test_over_max_batch_is_413_and_stores_nothing(strict_feedback, make_record, expect_error):
    records = [make_record() for _ in range(4)]
    with strict_feedback.ingest() as ingester, strict_feedback.admin() as admin:
        expect_error(ingester.post("/v1/requests", json={"records": records}), 413, code="batch_too_large")
        assert all(admin.get(f"/v1/requests/{r['request_id']}").status_code == 404 for r in records)
        assert ingester.post("/v1/requests", json={"records": records[:3]}).json()["inserted"] == 3


def test_without_store_text_no_prompt_or_answer_is_kept_or_exported(strict_feedback, make_record, route, export):
    chat = make_record()
    text = make_record(kind="text", prompt="Once upon a time", answer=" there was")
    same_prompt = [make_record(prompt=chat["prompt"]) for _ in range(2)]
    records = [chat, text, *same_prompt]
    with strict_feedback.ingest() as ingester, strict_feedback.admin() as admin:
        for batch in (records[:2], records[2:]):
            assert ingester.post("/v1/requests", json={"records": batch}).json()["inserted"] == len(batch)
        for record in records:
            stored = admin.get(f"/v1/requests/{record['request_id']}").json()
            assert stored["redacted"] is True and stored["prompt"] is None and stored["answer"] is None
            assert (stored["prompt_tokens"], stored["latency_ms"]) == (10, 120.0)  # metadata stays
        ratings = [
            (chat, "up", None),
            (text, "down", "a corrected answer"),
            (same_prompt[0], "up", None),
            (same_prompt[1], "down", "better"),
        ]
        for record, rating, correction in ratings:
            body = {"request_id": record["request_id"], "rating": rating}
            if correction:
                body["correction"] = correction
            assert admin.post("/v1/feedback", json=body).status_code == 201
        assert export("sft", client=admin, route=route) == []
        assert export("preference", client=admin, route=route) == []


def test_unknown_request_id_is_404(admin, expect_error):
    expect_error(admin.get(f"/v1/requests/{uuid.uuid4().hex}"), 404, code="request_not_found", type="not_found_error")
