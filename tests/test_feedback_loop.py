"""The loop through the gateway: a request, its log record, a thumbs-up, the summary and the export agree;
and no record is lost or doubled while the feedback service is down."""

import time

import httpx
import orjson
import pytest

from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, variant

pytestmark = postgres_only  # delivery between the services, not their stores


def wait_for(check, *, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def platform(make_gateway, sql_url, make_feedback, feedback_sql_url):
    feedback = make_feedback(sql_url=feedback_sql_url)
    return make_gateway(sql_url=sql_url, **feedback.gateway_env()), feedback


def record_of(feedback, request_id: str) -> dict | None:
    with feedback.admin() as admin:
        response = admin.get(f"/v1/requests/{request_id}")
    return response.json() if response.status_code == 200 else None


def test_request_record_rating_summary_and_export_agree(platform, upstreams):
    gateway, feedback = platform
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    key_id, key = gateway.create_key()
    with gateway.client(key) as client:
        answered = client.post("/v1/chat/completions", json=chat_body(route, content="What is 2+2?", max_tokens=3))
        request_id = answered.headers["x-request-id"]
        record = wait_for(lambda: record_of(feedback, request_id), timeout_s=10, what="the request record")
        assert record["key_id"] == key_id and record["route"] == route and record["variant"] == "a"
        assert record["model"] == "a-model" and record["status"] == 200
        assert record["prompt"] == [{"role": "user", "content": "What is 2+2?"}]
        assert record["answer"] == answered.json()["choices"][0]["message"]["content"]
        assert record["prompt_tokens"] == 11 and record["completion_tokens"] == 3

        rated = client.post("/v1/feedback", json={"request_id": request_id, "rating": "up", "comment": "right"})
        assert rated.status_code == 201, rated.text
        assert rated.json()["rating"] == "up" and rated.headers["x-request-id"]

    _, other_key = gateway.create_key()
    with gateway.client(other_key) as stranger:  # another key cannot rate (nor learn of) this request
        refused = stranger.post("/v1/feedback", json={"request_id": request_id, "rating": "down"})
    # Answered as a request not logged yet would be (202, waiting for its record), and never attached.
    assert refused.status_code == 202 and refused.json()["status"] == "pending"

    with feedback.admin() as admin:
        summary = admin.get("/v1/quality", params={"route": route}).json()["variants"]
        exported = admin.get("/v1/datasets/sft", params={"route": route}).content.splitlines()
    assert [(v["variant"], v["requests"], v["up"], v["down"]) for v in summary] == [("a", 1, 1, 0)]
    assert [orjson.loads(line)["messages"] for line in exported] == [
        [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": record["answer"]}]
    ]


def test_bad_ratings_through_the_gateway(platform, upstreams):
    gateway, _ = platform
    _, key = gateway.create_key()
    with gateway.client(key) as client:
        unknown = client.post("/v1/feedback", json={"request_id": "never-happened", "rating": "up"})
        invalid = client.post("/v1/feedback", json={"request_id": "x", "rating": "meh"})
        oversize = client.post("/v1/feedback", json={"request_id": "x", "rating": "up", "comment": "x" * 5000})
        not_json = client.post("/v1/feedback", content=b"{nope", headers={"content-type": "application/json"})
    assert unknown.status_code == 202 and unknown.json()["status"] == "pending"  # its record may yet arrive
    assert invalid.status_code == 422 and invalid.json()["error"]["type"] == "invalid_request_error"
    assert oversize.status_code == 422
    assert not_json.status_code in (400, 422)
    assert httpx.post(f"{gateway.url}/v1/feedback", json={"request_id": "x", "rating": "up"}).status_code == 401


HALF = 50  # requests before the gateway's restart mid-outage, and after it


def test_records_survive_a_feedback_outage_exactly_once(
    make_gateway, sql_url, make_feedback, feedback_sql_url, upstreams
):
    feedback = make_feedback(sql_url=feedback_sql_url)
    gateway = make_gateway(sql_url=sql_url, **feedback.gateway_env())
    route = gateway.put_route(variants=[variant("a", upstreams["alpha"])])
    _, key = gateway.create_key()
    feedback.stop()

    request_ids = []
    for half in range(2):
        with gateway.client(key) as client:
            for i in range(HALF):
                response = client.post("/v1/chat/completions", json=chat_body(route, content=f"question {half}.{i}"))
                assert response.status_code == 200  # clients do not notice the outage
                request_ids.append(response.headers["x-request-id"])
        if half == 0:
            # A gateway restart mid-outage: what it still holds goes to disk, and the new process replays it.
            gateway.stop()
            gateway.start()
    spooled = wait_for(
        lambda: _gauge(gateway, "llmops_gateway_request_log_spooled") == 2 * HALF,
        timeout_s=10,
        what="every record on disk",
    )
    assert spooled

    feedback.start()

    def all_arrived():
        with feedback.admin() as admin:
            variants = admin.get("/v1/quality", params={"route": route}).json()["variants"]
        return variants and variants[0]["requests"] == 2 * HALF

    wait_for(all_arrived, timeout_s=60, what="the spooled records")
    assert _gauge(gateway, "llmops_gateway_request_log_spooled") == 0
    assert not list((gateway.state_dir / "spool").glob("*.jsonl"))
    for request_id in request_ids[::10]:  # the records are the requests the clients made, each once
        assert record_of(feedback, request_id)["route"] == route
    with feedback.admin() as admin:
        assert admin.get("/v1/quality", params={"route": route}).json()["variants"][0]["requests"] == 2 * HALF


def _gauge(gateway, name: str) -> float:
    for line in httpx.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return -1.0
