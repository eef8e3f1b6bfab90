"""PostgreSQL stopped and started again under a running feedback service: while it is down, database-backed paths
answer 503 ``database_unavailable`` in the documented body (not a 500), and once it is back the service answers
again by itself, without a restart (its engine pings pooled connections before use).

The server is the session's private cluster (``private_postgres`` in the test kit): the shared one is never touched.
"""

import time

import httpx


def test_database_restart_gives_503_then_recovers_without_a_restart(
    make_feedback, private_postgres, private_postgres_url
):
    feedback = make_feedback(sql_url=private_postgres_url)
    pid = feedback.process.process.pid
    with feedback.admin() as client:
        assert client.get("/v1/requests").status_code == 200
        seen_down = []

        def while_down() -> None:
            for _ in range(3):
                response = client.get("/v1/requests")
                seen_down.append(response)

        private_postgres.restart(while_down=while_down)
        for response in seen_down:
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "database_unavailable"
            assert response.headers["retry-after"]
        statuses = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            statuses.append(client.get("/v1/requests").status_code)
            if statuses[-1] == 200:
                break
            time.sleep(0.2)
    assert statuses[-1] == 200, statuses
    assert feedback.process.process.pid == pid and feedback.process.process.poll() is None  # the same process
    assert httpx.get(f"{feedback.url}/readyz", timeout=5).status_code == 200
