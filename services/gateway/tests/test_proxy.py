"""The OpenAI-compatible proxy against a fake upstream on loopback (inference is not the subject here)."""

import re
import socket
import time

import httpx
import orjson
import pytest

from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, variant

pytestmark = postgres_only  # the proxy path, not the store


@pytest.fixture(scope="module")
def gateway(make_gateway, sql_url):
    return make_gateway(sql_url=sql_url)


@pytest.fixture
def route(gateway, upstreams):
    return gateway.put_route(variants=[variant("a", upstreams["alpha"])])


@pytest.fixture
def key(gateway):
    return gateway.create_key()[1]


def test_chat_completion_passes_through(gateway, upstreams, route, key):
    with gateway.client(key) as client:
        response = client.post("/v1/chat/completions", json=chat_body(route, temperature=0.3, seed=7))
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"].startswith("alpha:a-model:0")
    assert body["usage"]["total_tokens"] == 16
    assert response.headers["x-llmops-variant"] == "a"
    assert len(response.headers["x-request-id"]) == 32
    sent = upstreams["alpha"].stats.requests[-1]
    # The upstream sees its own model name, and the client's other fields untouched.
    assert sent["model"] == "a-model" and sent["temperature"] == 0.3 and sent["seed"] == 7


def test_text_completion(gateway, route, key):
    with gateway.client(key) as client:
        response = client.post("/v1/completions", json={"model": route, "prompt": "Once upon", "max_tokens": 3})
    assert response.status_code == 200
    assert response.json()["choices"][0]["text"] == "alpha:a-model:0 tok1 tok2"


def test_models_lists_routes_the_key_may_use(gateway, upstreams, route):
    other = gateway.put_route(variants=[variant("b", upstreams["beta"])])
    _, restricted = gateway.create_key(allowed_routes=[route])
    with gateway.client(restricted) as client:
        ids = {m["id"] for m in client.get("/v1/models").json()["data"]}
        refused = client.post("/v1/chat/completions", json=chat_body(other))
    assert route in ids and other not in ids
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "model_not_allowed"


def test_unknown_model_is_404_in_openai_format(gateway, key):
    with gateway.client(key) as client:
        response = client.post("/v1/chat/completions", json=chat_body("no-such-model"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert response.headers["x-request-id"]


def test_client_request_id_is_kept(gateway, route, key):
    with gateway.client(key) as client:
        response = client.post("/v1/chat/completions", json=chat_body(route), headers={"x-request-id": "my-trace-42"})
    assert response.headers["x-request-id"] == "my-trace-42"


def test_stream_chunks_arrive_in_order_before_upstream_finishes(gateway, upstreams, route, key):
    upstreams["alpha"].behaviour.chunks = 6
    upstreams["alpha"].behaviour.chunk_delay_s = 0.25
    events, first_at = [], None
    with (
        gateway.client(key) as client,
        client.stream("POST", "/v1/chat/completions", json=chat_body(route, stream=True)) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-llmops-variant"] == "a"
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            if first_at is None:
                first_at = time.monotonic()
                # Unbuffered: the client holds the first chunk while the upstream is still generating.
                assert upstreams["alpha"].stats.streams_finished == 0
            events.append(line[6:])
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    contents = [c["choices"][0]["delta"]["content"] for c in chunks if c["choices"]]
    assert contents == ["alpha:a-model:0 "] + [f"tok{i} " for i in range(1, 6)]
    # The gateway asked for usage upstream; the final usage chunk reaches the client.
    assert chunks[-1]["usage"] == {"prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17}
    assert upstreams["alpha"].stats.requests[-1]["stream_options"] == {"include_usage": True}


def test_client_disconnect_cancels_upstream(gateway, upstreams, route, key):
    upstream = upstreams["alpha"]
    upstream.behaviour.chunks = 100
    upstream.behaviour.chunk_delay_s = 0.2
    with (
        gateway.client(key) as client,
        client.stream("POST", "/v1/chat/completions", json=chat_body(route, stream=True)) as response,
    ):
        next(response.iter_lines())
    deadline = time.monotonic() + 10  # generous: CI machines are shared and loaded
    while upstream.stats.streams_cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.stats.streams_cancelled == 1
    assert upstream.stats.streams_finished == 0


def test_disconnect_while_upstream_is_silent_cancels_it(gateway, upstreams, route, key):
    """A client that leaves while the upstream has sent nothing yet (queued, thinking) still cancels it."""
    upstream = upstreams["alpha"]
    upstream.behaviour.chunks = 3
    upstream.behaviour.chunk_delay_s = 1.5  # silent for 1.5 s after the first chunk
    body = orjson.dumps(chat_body(route, stream=True))
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while b"alpha:a-model:0" not in received:
            received += sock.recv(65536)
    deadline = time.monotonic() + 1.2
    while upstream.stats.streams_cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.stats.streams_cancelled == 1


@pytest.mark.parametrize("stream", [False, True])
def test_disconnect_before_the_upstream_answers_cancels_it(gateway, upstreams, route, key, stream):
    """A client that leaves while the upstream is still queueing/thinking (no byte sent yet) cancels it."""
    upstream = upstreams["alpha"]
    upstream.behaviour.delay_s = 1.9  # under the test gateway's 2 s read timeout, which would also cancel it
    body = orjson.dumps(chat_body(route, stream=stream))
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        deadline = time.monotonic() + 2
        while not upstream.stats.requests and time.monotonic() < deadline:
            time.sleep(0.02)
    deadline = time.monotonic() + 1.0  # well before the upstream would answer
    while upstream.stats.abandoned_before_answer == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.stats.abandoned_before_answer == 1


BAD_BODIES = [
    (b"{not json", 400, "invalid_json"),
    (b"[1, 2]", 400, "invalid_json"),
    (b"", 400, "invalid_json"),
    (b'{"messages": [{"role": "user", "content": "x"}]}', 422, "invalid_request"),
    (b'{"model": "m", "messages": []}', 422, "invalid_request"),
    (b'{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}', 422, "invalid_request"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -5}', 422, "invalid_request"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 1000}', 422, "invalid_request"),
    (b'{"model": 12, "messages": "hi"}', 422, "invalid_request"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes please"}', 422, "invalid_request"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_BODIES)
def test_malformed_bodies_get_openai_errors(gateway, key, body, status, code):
    with gateway.client(key) as client:
        response = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["type"] == "invalid_request_error" and error["message"]


def test_oversize_body_is_413(gateway, key):
    huge = orjson.dumps(chat_body("m", content="x" * (5 * 1024 * 1024)))
    with gateway.client(key) as client:
        response = client.post("/v1/chat/completions", content=huge)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_upstream_client_errors_pass_through(gateway, upstreams, route, key):
    upstreams["alpha"].behaviour.status = 400
    with gateway.client(key) as client:
        response = client.post("/v1/chat/completions", json=chat_body(route))
    assert response.status_code == 400
    assert "fails on purpose" in response.json()["error"]["message"]


@pytest.mark.parametrize("status", [401, 403])
def test_an_upstream_refusing_the_gateways_credential_is_the_upstreams_failure(gateway, upstreams, route, key, status):
    """The gateway accepted the client's key: a 401 or 403 from the upstream is about the gateway's own credential
    for it, a 502 (the client's key is fine), and its body, which may quote that credential, is not relayed."""
    upstreams["alpha"].behaviour.status = status
    upstreams["alpha"].behaviour.quote_authorization = True
    with gateway.client(key) as client:
        response = client.post("/v1/chat/completions", json=chat_body(route))
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_auth_error"
    assert "fails on purpose" not in response.text and "refused:" not in response.text


def test_request_log_records_every_request(gateway, upstreams, route, key):
    with gateway.client(key) as client:
        plain = client.post("/v1/chat/completions", json=chat_body(route, content="log me") | {"user": "al@ex.org"})
        with client.stream("POST", "/v1/chat/completions", json=chat_body(route, stream=True)) as streamed:
            streamed.read()
    wanted = {plain.headers["x-request-id"], streamed.headers["x-request-id"]}
    records = {}
    deadline = time.monotonic() + 5
    while len(records) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = gateway.request_log_path.read_bytes().splitlines() if gateway.request_log_path.exists() else []
        records = {r["request_id"]: r for r in map(orjson.loads, lines) if r["request_id"] in wanted}
    plain_record = records[plain.headers["x-request-id"]]
    assert plain_record["route"] == route and plain_record["variant"] == "a" and plain_record["status"] == 200
    assert plain_record["prompt"] == [{"role": "user", "content": "log me"}]
    assert plain_record["answer"].startswith("alpha:a-model:0")
    usage = plain_record["usage"]
    assert usage["prompt_tokens"] + usage["completion_tokens"] == 16 and plain_record["latency_ms"] > 0
    stream_record = records[streamed.headers["x-request-id"]]
    assert stream_record["stream"] is True and stream_record["ttft_ms"] > 0
    assert stream_record["usage"]["completion_tokens"] == 5
    # The assignment unit, pseudonymous: the request's user, else its key; the same unit gives the same id.
    assert re.fullmatch("[0-9a-f]{16}", plain_record["user_hash"]) and not any(b"al@ex.org" in line for line in lines)
    assert stream_record["user_hash"] not in (None, plain_record["user_hash"])


def test_metrics_count_requests_by_route_and_variant(gateway, route, key):
    with gateway.client(key) as client:
        client.post("/v1/chat/completions", json=chat_body(route))
    text = httpx.get(f"{gateway.url}/metrics").text
    assert f'llmops_gateway_requests_total{{route="{route}",status="200",variant="a"}}' in text
    for name in ("llmops_gateway_added_latency_seconds_bucket", "llmops_gateway_tokens_total"):
        assert name in text


def test_refusals_before_the_upstream_are_counted_without_client_chosen_labels(gateway, route):
    def count(labels: str) -> float:
        for line in httpx.get(f"{gateway.url}/metrics").text.splitlines():
            if line.startswith(f"llmops_gateway_requests_total{{{labels}}} "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    unauthorized, unknown = 'route="-",status="401",variant="-"', 'route="-",status="404",variant="-"'
    forbidden = f'route="{route}",status="403",variant="-"'
    before = {labels: count(labels) for labels in (unauthorized, unknown, forbidden)}
    _, other_route_only = gateway.create_key(allowed_routes=["some-other-route"])
    _, key = gateway.create_key()
    with gateway.client("sk-llmops-not-a-key") as client:
        assert client.post("/v1/chat/completions", json=chat_body(route)).status_code == 401
    with gateway.client(key) as client:
        assert client.post("/v1/chat/completions", json=chat_body("no-such-route-x1")).status_code == 404
    with gateway.client(other_route_only) as client:
        assert client.post("/v1/chat/completions", json=chat_body(route)).status_code == 403
    assert {labels: count(labels) - before[labels] for labels in before} == dict.fromkeys(before, 1.0)
    assert "no-such-route-x1" not in httpx.get(f"{gateway.url}/metrics").text
