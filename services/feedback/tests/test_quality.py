"""Quality by route and variant: exact counts over a window, a Wilson 95% interval, and Prometheus gauges."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from llmops_feedback.quality.service import wilson_interval


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


# --- the Wilson interval --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("up", "total", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),
        (5, 10, 0.2366, 0.7634),
        (50, 100, 0.4038, 0.5962),
        (1, 1, 0.2065, 1.0),
        (81, 263, 0.2553, 0.3662),
    ],
)
def test_wilson_known_values(up, total, low, high):
    assert wilson_interval(up, total) == pytest.approx((low, high), abs=1e-4)


def test_wilson_without_ratings_is_none():
    assert wilson_interval(0, 0) is None


def test_wilson_is_exactly_0_and_1_at_the_extremes():
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)


def test_wilson_always_contains_the_point_estimate():
    outside = [
        (up, total, wilson_interval(up, total))
        for total in range(1, 61)
        for up in range(total + 1)
        if not 0.0 <= wilson_interval(up, total)[0] <= up / total <= wilson_interval(up, total)[1] <= 1.0
    ]
    assert outside == []


def test_wilson_narrows_as_ratings_grow():
    widths = [high - low for low, high in (wilson_interval(8 * n, 10 * n) for n in (1, 10, 100, 1000))]
    assert widths == sorted(widths, reverse=True) and widths[-1] < 0.02


# --- the summary over a window --------------------------------------------------------------------------------------


def test_summary_is_exact_per_variant(admin, make_record, ingest, rate, route):
    now = time.time()
    a = [
        make_record(
            variant="a",
            latency_ms=100.0 * (i + 1),
            ttft_ms=10.0 * (i + 1),
            started_at=now - 60 + i,
            usage={"prompt_tokens": 10 + i, "completion_tokens": 5},
        )
        for i in range(5)
    ]
    b = [
        make_record(
            variant="b",
            latency_ms=50.0,
            ttft_ms=None,
            started_at=now - 30,
            usage={"prompt_tokens": 3, "completion_tokens": 2},
        ),
        make_record(
            variant="b", status=500, answer=None, latency_ms=250.0, ttft_ms=None, usage={}, started_at=now - 30
        ),
    ]
    ingest(*a, *b)
    for record, rating in zip(a, ["up", "up", "down", "up"], strict=False):  # a[4] is not rated
        rate(record["request_id"], rating)
    rate(a[2]["request_id"], "down", comment="still bad")  # rated again: counts once
    rate(a[0]["request_id"], "down")
    rate(a[0]["request_id"], "up")  # and back: the current rating counts
    response = admin.get("/v1/quality", params={"route": route, "since": _iso(now - 3600), "until": _iso(now + 60)})
    assert response.status_code == 200, response.text
    summary = response.json()
    assert (summary["since"], summary["until"]) == (
        _iso(now - 3600).replace("+00:00", "Z"),
        _iso(now + 60).replace("+00:00", "Z"),
    )
    variants = {v["variant"]: v for v in summary["variants"]}
    assert list(variants) == ["a", "b"] and {v["route"] for v in variants.values()} == {route}
    low, high = wilson_interval(3, 4)
    assert variants["a"] == {
        "route": route,
        "variant": "a",
        "prompt_name": None,
        "prompt_version": None,
        "requests": 5,
        "errors": 0,
        "rated": 4,
        "up": 3,
        "down": 1,
        "up_rate": 0.75,
        "up_rate_low": pytest.approx(low),
        "up_rate_high": pytest.approx(high),
        "avg_latency_ms": pytest.approx(300.0),
        "avg_ttft_ms": pytest.approx(30.0),
        "prompt_tokens": 60,
        "completion_tokens": 25,
    }
    assert variants["b"] == {
        "route": route,
        "variant": "b",
        "prompt_name": None,
        "prompt_version": None,
        "requests": 2,
        "errors": 1,
        "rated": 0,
        "up": 0,
        "down": 0,
        "up_rate": None,
        "up_rate_low": None,
        "up_rate_high": None,
        "avg_latency_ms": pytest.approx(150.0),
        "avg_ttft_ms": None,
        "prompt_tokens": 3,
        "completion_tokens": 2,
    }
    only_b = admin.get("/v1/quality", params={"route": route, "variant": "b"}).json()["variants"]
    assert [v["variant"] for v in only_b] == ["b"]


def test_a_summary_splits_by_prompt_version(admin, make_record, ingest, rate, route):
    """Two prompt versions on one variant (an alias moved): apart with ``by_prompt``, together without."""
    records = [make_record(variant="a", prompt_name="support", prompt_version=v) for v in ("1", "1", "2")]
    ingest(*records, make_record(variant="b"))
    rate(records[0]["request_id"], "up")
    rate(records[2]["request_id"], "down")
    rows = admin.get("/v1/quality", params={"route": route, "by_prompt": "true"}).json()["variants"]
    split = [(r["variant"], r["prompt_name"], r["prompt_version"], r["requests"], r["up"], r["down"]) for r in rows]
    assert split == [("a", "support", "1", 2, 1, 0), ("a", "support", "2", 1, 0, 1), ("b", None, None, 1, 0, 0)]
    together = admin.get("/v1/quality", params={"route": route}).json()["variants"]
    assert [(r["variant"], r["requests"], r["prompt_version"]) for r in together] == [("a", 3, None), ("b", 1, None)]


def test_the_window_excludes_records_outside_it(admin, make_record, ingest, rate, route):
    edge = float(int(time.time()) - 7200)  # whole seconds: the bounds below are exact
    old = make_record(started_at=edge - 3 * 86400, finished_at=edge - 3 * 86400 + 1)
    at_edge = make_record(started_at=edge, finished_at=edge + 1)
    recent = make_record()
    ingest(old, at_edge, recent)
    for record in (old, at_edge, recent):
        rate(record["request_id"], "up")

    def requests(**window) -> int:
        response = admin.get("/v1/quality", params={"route": route, **window})
        assert response.status_code == 200, response.text
        return sum(v["requests"] for v in response.json()["variants"])

    assert requests() == 2  # the last 24 hours by default
    assert requests(since=_iso(edge - 4 * 86400), until=_iso(edge - 2 * 86400)) == 1
    assert requests(since=_iso(edge)) == 2  # since is inclusive
    assert requests(since=_iso(edge - 4 * 86400), until=_iso(edge)) == 1  # until is exclusive
    assert requests(since=_iso(edge + 1), until=_iso(edge + 3600)) == 0


@pytest.mark.parametrize(
    "window",
    [
        {"since": "2026-01-01T00:00:00"},
        {"since": "2026-01-01T00:00:00+00:00", "until": "2026-01-02T00:00:00"},
        {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"since": "yesterday"},
    ],
)
def test_bad_windows_are_422(admin, expect_error, window):
    expect_error(admin.get("/v1/quality", params=window), 422, type="invalid_request_error")


# --- Prometheus ----------------------------------------------------------------------------------------------------


def test_prometheus_gauges_and_counters_by_route_and_variant(feedback, make_record, ingest, rate, route, scrape):
    a = [make_record(variant="a") for _ in range(10)]
    b = [make_record(variant="b") for _ in range(3)]
    ingest(*a, *b)
    for i, record in enumerate(a):
        rate(record["request_id"], "up" if i < 8 else "down")
    rate(a[0]["request_id"], "up")  # a second vote on one request: the counter counts it, the gauges do not

    def labels(variant: str, **more: str) -> frozenset:
        return frozenset({"route": route, "variant": variant, **more}.items())

    deadline = time.monotonic() + 10  # the refresher runs every 0.2 s in tests
    while (metrics := scrape(feedback.url)).get(("llmops_feedback_window_rated", labels("a"))) != 10:
        assert time.monotonic() < deadline, "the quality gauges were not refreshed"
        time.sleep(0.1)
    low, high = wilson_interval(8, 10)
    assert metrics[("llmops_feedback_thumbs_up_rate", labels("a"))] == pytest.approx(0.8)
    assert metrics[("llmops_feedback_thumbs_up_rate_lower", labels("a"))] == pytest.approx(low)
    assert metrics[("llmops_feedback_thumbs_up_rate_upper", labels("a"))] == pytest.approx(high)
    assert metrics[("llmops_feedback_window_requests", labels("a"))] == 10
    # b has traffic and no ratings: its request gauge, and no rate at all (not a made-up 0).
    assert metrics[("llmops_feedback_window_requests", labels("b"))] == 3
    assert metrics[("llmops_feedback_window_rated", labels("b"))] == 0
    for name in (
        "llmops_feedback_thumbs_up_rate",
        "llmops_feedback_thumbs_up_rate_lower",
        "llmops_feedback_thumbs_up_rate_upper",
    ):
        assert (name, labels("b")) not in metrics
    assert metrics[("llmops_feedback_ratings_total", labels("a", rating="up"))] == 9
    assert metrics[("llmops_feedback_ratings_total", labels("a", rating="down"))] == 2
    assert metrics[("llmops_feedback_records_ingested_total", labels("a"))] == 10
    assert metrics[("llmops_feedback_records_ingested_total", labels("b"))] == 3


def test_gauges_cover_only_the_trailing_window(feedback, make_record, ingest, rate, route, scrape):
    old = make_record(started_at=time.time() - 2 * 86400)
    ingest(old)
    rate(old["request_id"], "up")
    fresh = make_record(variant="fresh")
    ingest(fresh)
    key = ("llmops_feedback_window_requests", frozenset({"route": route, "variant": "fresh"}.items()))
    deadline = time.monotonic() + 10
    while key not in (metrics := scrape(feedback.url)):
        assert time.monotonic() < deadline, "the quality gauges were not refreshed"
        time.sleep(0.1)
    assert not any(
        dict(labels).get("route") == route and dict(labels).get("variant") == "a"
        for name, labels in metrics
        if name.startswith("llmops_feedback_window")
    )
    assert metrics[("llmops_feedback_records_ingested_total", frozenset({"route": route, "variant": "a"}.items()))] == 1


def test_summary_needs_the_admin_token(ingester, expect_error):
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    expect_error(ingester.get("/v1/quality", params={"since": since}), 401, code="invalid_token")
