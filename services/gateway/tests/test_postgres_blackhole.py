"""PostgreSQL cut off by a network partition under a running gateway: its packets dropped, so connects and queries
get no answer at all, not even an error (``postgres_proxy.blackhole()`` in the test kit).

What must hold (README "What the gateway does"): nothing waits on the database longer than its timeouts
(``GATEWAY_DATABASE_CONNECT_TIMEOUT_S``, ``GATEWAY_DATABASE_STATEMENT_TIMEOUT_S``: 1 s and 5 s here), then it is unavailable
as after a restart: the admin API answers 503 ``database_unavailable`` and a key never seen 503
``key_store_unavailable``, both with ``Retry-After``, ``/readyz`` 503; a cached key keeps being served. Once the
partition heals the same process serves everything again. Connections that went silent while the server stayed
reachable (a failover, a NAT table flushed) cost a ping, not a 503: the pool connects afresh.
"""

import time

import httpx

from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.processes import until_ok

# Each call below must be answered: a client timeout (a hang) fails the test, whatever the status would have been.
ANSWER_WITHIN_S = 15
PING_FAILED = "pooled database connection failed its ping"


def test_a_blackholed_database_gives_503_within_the_timeouts_then_recovers(
    make_gateway, postgres_proxy, proxied_postgres_url, upstreams
):
    gateway = make_gateway(
        sql_url=proxied_postgres_url,
        GATEWAY_DATABASE_CONNECT_TIMEOUT_S="1",
        GATEWAY_DATABASE_STATEMENT_TIMEOUT_S="5",  # no statement waits on a blackhole: the ping before it does
        GATEWAY_SPEND_FLUSH_INTERVAL_S="0.2",
    )
    process = gateway.replicas[0].process
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    key_id, key = gateway.create_key()
    _, unseen_key = gateway.create_key()  # stored, never used before the partition: not in the key cache
    with (
        gateway.client(key, timeout=ANSWER_WITHIN_S) as client,
        gateway.client(unseen_key, timeout=ANSWER_WITHIN_S) as unseen,
        gateway.admin() as admin,
    ):
        assert client.post("/v1/chat/completions", json=chat_body(route)).status_code == 200
        with postgres_proxy.blackholed_for():
            time.sleep(1.2)  # past the key cache's TTL (0.5 s) and the route table's (1 s): both must try SQL
            cached = [client.post("/v1/chat/completions", json=chat_body(route)) for _ in range(2)]
            refused = unseen.post("/v1/chat/completions", json=chat_body(route))
            down = [admin.get("/admin/keys"), admin.post("/admin/keys", json={"name": "during-the-partition"})]
            ready = httpx.get(f"{gateway.url}/readyz", timeout=ANSWER_WITHIN_S)

        for response in cached:
            assert response.status_code == 200, response.text  # served from the cached key and routes
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "key_store_unavailable", refused.text
        assert refused.headers["retry-after"]
        for response in down:
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "database_unavailable" and response.headers["retry-after"]
        assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("error"), ready.text

        # Healed: the same process looks keys up and answers the admin API again, without a restart.
        after = until_ok(lambda: unseen.post("/v1/chat/completions", json=chat_body(route)))
        assert after[-1].status_code == 200, [r.text for r in after]
        assert {k["id"] for k in admin.get("/admin/keys").json()["data"]} >= {key_id}

        # The pooled connections go silent, the server stays reachable: the pool finds out and connects afresh. The
        # readiness probe's connection is back in the pool when it answers: the next checkout finds it frozen.
        assert httpx.get(f"{gateway.url}/readyz", timeout=ANSWER_WITHIN_S).status_code == 200
        pings_failed = gateway.logs().count(PING_FAILED)
        postgres_proxy.freeze_established()
        created = admin.post("/admin/keys", json={"name": "after-a-failover"})
        assert created.status_code == 201, created.text
        assert gateway.logs().count(PING_FAILED) > pings_failed

        # The spend of every answer reaches SQL, the ones during the partition included. At least: a flush whose
        # commit timed out is written again, and may have been committed the first time.
        served = 1 + len(cached)
        deadline = time.monotonic() + 10
        while (spent := admin.get("/admin/spend", params={"key": key_id}).json()["total"]["requests"]) < served:
            assert time.monotonic() < deadline, f"spend of {spent} requests recorded, {served} served"
            time.sleep(0.2)

    assert process.poll() is None and gateway.replicas[0].process is process  # the same process throughout
    assert httpx.get(f"{gateway.url}/readyz", timeout=5).status_code == 200
    assert "key store unreachable" in gateway.logs() and "Traceback" not in gateway.logs()  # warnings, not stacks
