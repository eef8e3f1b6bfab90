"""PostgreSQL stopped and started again under a running gateway whose keys, routes and spend live in it.

While it is down (the documented behaviour, README "What the gateway does"): a key seen within its cache's TTL keeps
being served from its last entry, routes from the last table, and spend waits in memory for the next flush; a key
the gateway has not seen yet gets 503 ``key_store_unavailable`` and the admin API 503 ``database_unavailable``, both
with ``Retry-After``, never a 500. Once it is back the same process serves everything again (its engine pings pooled
connections before use) and the spend made during the outage is written, none lost.

The server is the session's private cluster (``private_postgres`` in the test kit): the shared one is never touched.
"""

import time

import httpx

from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.processes import until_ok


def test_keys_routes_and_spend_survive_a_database_restart(
    make_gateway, private_postgres, private_postgres_url, upstreams
):
    gateway = make_gateway(sql_url=private_postgres_url, GATEWAY_SPEND_FLUSH_INTERVAL_S="0.2")
    process = gateway.replicas[0].process
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    key_id, key = gateway.create_key()
    _, unseen_key = gateway.create_key()  # stored, never used before the outage: not in the key cache
    answers: list[httpx.Response] = []
    with gateway.client(key) as client, gateway.client(unseen_key) as unseen, gateway.admin() as admin:
        answers.append(client.post("/v1/chat/completions", json=chat_body(route)))
        down: dict[str, list[httpx.Response]] = {"cached": [], "unseen": [], "admin": []}

        def while_down() -> None:
            time.sleep(1.2)  # past the key cache's TTL (0.5 s) and the route table's (1 s): both must try SQL
            for _ in range(3):
                down["cached"].append(client.post("/v1/chat/completions", json=chat_body(route)))
            down["unseen"].append(unseen.post("/v1/chat/completions", json=chat_body(route)))
            down["admin"].append(admin.get("/admin/keys"))
            down["admin"].append(admin.post("/admin/keys", json={"name": "during-the-outage"}))

        private_postgres.restart(while_down=while_down)

        for response in down["cached"]:
            assert response.status_code == 200, response.text  # served from the cached key and routes
        (refused,) = down["unseen"]
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "key_store_unavailable", refused.text
        assert refused.headers["retry-after"]
        for response in down["admin"]:
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "database_unavailable" and response.headers["retry-after"]

        # Back: the same process answers a key it must look up, and the admin API, without a restart.
        after_unseen = until_ok(lambda: unseen.post("/v1/chat/completions", json=chat_body(route)))
        assert after_unseen[-1].status_code == 200, [r.text for r in after_unseen]
        answers.append(client.post("/v1/chat/completions", json=chat_body(route)))
        keys = admin.get("/admin/keys")
        assert keys.status_code == 200 and {k["id"] for k in keys.json()["data"]} >= {key_id}
        assert gateway.put_route(variants=[variant("a", upstreams["alpha"])])  # a write, too

        # The spend of every answer the key got, the ones during the outage included, reaches SQL.
        served = len(answers) + len(down["cached"])
        deadline = time.monotonic() + 10
        while (spent := admin.get("/admin/spend", params={"key": key_id}).json()["total"]["requests"]) < served:
            assert time.monotonic() < deadline, f"spend of {spent} requests recorded, {served} served"
            time.sleep(0.2)
        assert spent == served

    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    every = [*answers, *down["cached"], *down["unseen"], *down["admin"], *after_unseen]
    assert not [r for r in every if r.status_code >= 500 and r.status_code != 503], "a 5xx other than 503"
    assert process.poll() is None and gateway.replicas[0].process is process  # the same process throughout
    assert httpx.get(f"{gateway.url}/readyz", timeout=5).status_code == 200
    assert "key store unreachable" in gateway.logs() and "Traceback" not in gateway.logs()  # warnings, not stacks
