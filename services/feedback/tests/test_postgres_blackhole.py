"""PostgreSQL cut off by a network partition under a running feedback service: its packets dropped, so connects and
queries get no answer at all, not even an error (``postgres_proxy.blackhole()`` in the test kit).

What must hold: nothing waits on the database longer than ``FEEDBACK_DATABASE_CONNECT_TIMEOUT_S`` (1 s here), then
reads and the gateway's deliveries answer 503 ``database_unavailable`` with ``Retry-After`` (the gateway spools and
sends again), ``/readyz`` 503, and the quality gauges' background refresh fails its round and tries the next.
Once the partition heals the same process serves again, its refresh included, without a restart.
"""

import time

import httpx

from llmops_testkit.processes import until_ok

ANSWER_WITHIN_S = 15  # each call must be answered: a client timeout (a hang) fails the test


def test_a_blackholed_database_gives_503_then_recovers_without_a_restart(
    make_feedback, postgres_proxy, proxied_postgres_url, make_record, route, scrape
):
    feedback = make_feedback(
        sql_url=proxied_postgres_url,
        FEEDBACK_DATABASE_CONNECT_TIMEOUT_S="1",
        FEEDBACK_DATABASE_STATEMENT_TIMEOUT_S="5",
    )
    pid = feedback.process.process.pid
    with feedback.admin() as admin, feedback.ingest() as ingest:
        admin.timeout = ingest.timeout = httpx.Timeout(ANSWER_WITHIN_S)
        assert ingest.post("/v1/requests", json={"records": [make_record()]}).status_code == 200
        with postgres_proxy.blackholed_for():
            down = [admin.get("/v1/requests"), ingest.post("/v1/requests", json={"records": [make_record()]})]
            ready = httpx.get(f"{feedback.url}/readyz", timeout=ANSWER_WITHIN_S)
        for response in down:
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "database_unavailable" and response.headers["retry-after"]
        assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("error"), ready.text

        after = until_ok(lambda: admin.get("/v1/requests"))
        assert after[-1].status_code == 200, [r.text for r in after]
        assert ingest.post("/v1/requests", json={"records": [make_record()]}).status_code == 200

    # The refresh met the partition, and came back by itself: its gauges count both records taken.
    window = ("llmops_feedback_window_requests", frozenset({"route": route, "variant": "a"}.items()))
    deadline = time.monotonic() + 10
    while scrape(feedback.url).get(window) != 2:
        assert time.monotonic() < deadline, "the quality gauges were not refreshed after the partition"
        time.sleep(0.2)
    log = feedback.process.log_path.read_text()
    assert "quality refresh failed" in log and "Traceback" not in log
    assert feedback.process.process.pid == pid and feedback.process.process.poll() is None  # the same process
    assert httpx.get(f"{feedback.url}/readyz", timeout=5).status_code == 200
