"""``GET /v1/requests``: the request log browser the console reads. Newest first, filtered by route, variant, the
key (or any of several), the current rating and time; pages that neither repeat nor skip a record."""

import time
from datetime import UTC, datetime

import pytest


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def test_filters_and_newest_first(admin, make_record, ingest, rate, route):
    now = time.time()
    records = [
        make_record(variant="a" if i % 2 else "b", started_at=now - 100 + i, key_id=f"key_{i % 3}") for i in range(6)
    ]
    ingest(*records)
    ids = [r["request_id"] for r in records]
    rate(ids[1], "up")
    rate(ids[2], "up")
    rate(ids[2], "down", correction="better")  # the current rating is the newest: down
    rate(ids[3], "down")

    def listed(**params) -> list[str]:
        response = admin.get("/v1/requests", params={"route": route, **params})
        assert response.status_code == 200, response.text
        return [row["request_id"] for row in response.json()["data"]]

    assert listed() == ids[::-1]
    assert listed(variant="a") == [ids[5], ids[3], ids[1]]
    assert listed(key_id="key_1") == [ids[4], ids[1]]
    assert listed(key_id=["key_1", "key_2"]) == [ids[5], ids[4], ids[2], ids[1]]  # any of a team's keys
    assert listed(rating="up") == [ids[1]]
    assert listed(rating="down") == [ids[3], ids[2]]
    assert listed(rating="rated") == [ids[3], ids[2], ids[1]]
    assert listed(rating="unrated") == [ids[5], ids[4], ids[0]]
    assert listed(since=_iso(now - 97), until=_iso(now - 95)) == [ids[4], ids[3]]
    row = admin.get("/v1/requests", params={"route": route, "rating": "down", "limit": 1}).json()["data"][0]
    assert row["rating"] == "down" and row["prompt_preview"] and row["variant"] == "a"


def test_pages_follow_the_cursor(admin, make_record, ingest, route):
    now = time.time()
    records = [make_record(started_at=now - 10) for _ in range(5)]  # one moment: the id breaks the tie
    ingest(*records)
    seen, cursor = [], None
    while True:
        body = admin.get("/v1/requests", params={"route": route, "limit": 2, "before": cursor}).json()
        seen += [row["request_id"] for row in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(r["request_id"] for r in records) and len(seen) == 5


@pytest.mark.parametrize(
    "params",
    [
        {"rating": "meh"},
        {"limit": 0},
        {"limit": 201},
        {"since": "2026-01-01T00:00:00"},  # no timezone
        {"before": "not-a-cursor"},
        {"before": "2026-01-01T00:00:00|"},
        {"key_id": [f"key_{i}" for i in range(501)]},  # more keys than a query string carries safely
    ],
)
def test_bad_queries_are_422(admin, expect_error, params):
    expect_error(admin.get("/v1/requests", params=params), 422)


def test_browsing_needs_the_admin_token(ingester, expect_error):
    expect_error(ingester.get("/v1/requests"), 401)
