"""Faults and bad answers from an upstream, through a real gateway process: a model server killed mid-stream,
streams that break or stall, malformed SSE, a 200 that is not an answer (answers past the size limits:
test_upstream_size_limits.py).

What must hold each time: the client gets a clean OpenAI error (a status before the head, the SSE error event
after it), what was produced is accounted (request log and quota counters), the circuit opens on an upstream
that keeps failing, the fallback serves, and the gateway never answers 500 nor stops serving.
The test gateway runs with breaker threshold 3, cooldown 1.0 s and upstream read timeout 2.0 s.
"""

import signal
import sys
import time

import httpx
import orjson
import pytest

from llmops_cli.procs import spawn
from llmops_gateway.proxy.schemas import ChatCompletionRequest
from llmops_gateway.proxy.tokens import estimate_prompt_tokens
from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, read_until, sse_events, variant
from llmops_testkit.processes import free_port

pytestmark = postgres_only  # upstream faults, not the store


@pytest.fixture(scope="module")
def gateway(make_gateway, sql_url):
    # Lease 0: every reservation is counted in Redis as it is made, so counters can be compared exactly. An answer
    # may take 4 s at most, start to end (the read timeout, between bytes, is 2 s).
    return make_gateway(sql_url=sql_url, GATEWAY_QUOTA_LEASE_S="0", GATEWAY_UPSTREAM_ANSWER_TIMEOUT_S="4")


@pytest.fixture
def model_server(tmp_path):
    """A fake model server in a process of its own, so a test can kill it as a crash would."""
    port = free_port()
    argv = [sys.executable, "-m", "llmops_testkit.fake_upstream", "--port", str(port), "--name", "omega"]
    process = spawn([*argv, "--chunks", "200", "--chunk-delay", "0.02"], log_path=tmp_path / "omega.log")
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline and process.poll() is None, (tmp_path / "omega.log").read_text()
            time.sleep(0.1)
    process.base_url = f"http://127.0.0.1:{port}/v1"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(5)


def test_model_server_killed_mid_stream(gateway, upstreams, rds, model_server):
    """The client gets what was streamed and then an error event; what it got is charged; the fallback serves
    the next requests and the dead variant's circuit opens."""
    omega = {"name": "a", "upstream": model_server.base_url, "model": "omega-model", "weight": 1.0}
    route = gateway.put_route(variants=[omega, variant("b", upstreams["beta"], weight=0)], fallbacks=["b"])
    key_id, key = gateway.create_key(limits={"tpm": 1_000_000})
    body = chat_body(route, stream=True, max_tokens=200)
    reserved = estimate_prompt_tokens(ChatCompletionRequest.model_validate(body)) + 200
    with gateway.client(key) as client, client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        received = []
        for line in lines:
            received.append(line)
            if len(sse_events(received)) == 3:
                break
        model_server.send_signal(signal.SIGKILL)  # a crash: no goodbye on the connection
        received.extend(lines)
        request_id = response.headers["x-request-id"]
    events = sse_events(received)
    content = [e for e in events if isinstance(e, dict) and e.get("choices")]
    assert len(content) >= 3 and len(content) < 200
    assert events[-1]["error"]["code"] == "upstream_error" and events[-1]["error"]["type"] == "server_error"
    assert "[DONE]" not in events

    record = gateway.record(request_id)
    assert record["status"] == 502 and record["variant"] == "a"
    prompt = estimate_prompt_tokens(ChatCompletionRequest.model_validate(body))
    assert record["usage"] == {"prompt_tokens": prompt, "completion_tokens": len(content)}
    # The reservation (prompt + max_tokens) is replaced by what was produced, not refunded, not kept.
    assert reserved > prompt + len(content)
    assert read_until(lambda: gateway.tpm_counter(rds, key_id), lambda v: v == prompt + len(content)) == (
        prompt + len(content)
    )

    with gateway.client(key) as client:  # the dead server refuses: fallback, then the circuit opens
        served = [client.post("/v1/chat/completions", json=chat_body(route)) for _ in range(3)]
    assert [(r.status_code, r.headers["x-llmops-variant"]) for r in served] == [(200, "b")] * 3
    labels = {"route": route, "variant": "a"}
    assert gateway.metric("llmops_gateway_circuit_breaker_state", labels) == 1.0
    assert gateway.metric("llmops_gateway_upstream_errors_total", {**labels, "kind": "stream_broken"}) == 1.0
    assert gateway.metric("llmops_gateway_upstream_errors_total", {**labels, "kind": "connect"}) == 2.0
    assert gateway.metric("llmops_gateway_upstream_errors_total", {**labels, "kind": "circuit_open"}) == 1.0


def test_streams_that_break_halfway_open_the_circuit(gateway, upstreams):
    """An upstream that answers 200 and then drops every stream is failing, though each status line was fine."""
    alpha, beta = upstreams["alpha"], upstreams["beta"]
    alpha.behaviour.close_mid_stream = True
    route = gateway.put_route(variants=[variant("a", alpha), variant("b", beta, weight=0)], fallbacks=["b"])
    _, key = gateway.create_key()
    with gateway.client(key) as client:
        for _ in range(3):
            with client.stream("POST", "/v1/chat/completions", json=chat_body(route, stream=True)) as response:
                events = sse_events(response.iter_lines())
            assert response.headers["x-llmops-variant"] == "a"
            assert events[-1]["error"]["code"] == "upstream_error"
        with client.stream("POST", "/v1/chat/completions", json=chat_body(route, stream=True)) as response:
            events = sse_events(response.iter_lines())
    assert response.headers["x-llmops-variant"] == "b" and events[-1] == "[DONE]"
    assert len(alpha.stats.requests) == 3
    assert gateway.metric("llmops_gateway_circuit_breaker_state", {"route": route, "variant": "a"}) == 1.0


def test_a_stream_that_stalls_ends_with_a_timeout_event(gateway, upstreams):
    """A stream that never ends (the upstream goes silent) ends after the read timeout (2 s here) with an error
    event, and the worker is free: another request is served meanwhile."""
    alpha = upstreams["alpha"]
    alpha.behaviour.chunk_delay_s = 60
    route = gateway.put_route(variants=[variant("a", alpha)])
    quick = gateway.put_route(variants=[variant("b", upstreams["beta"])])
    _, key = gateway.create_key()
    with gateway.client(key) as client:
        with client.stream("POST", "/v1/chat/completions", json=chat_body(route, stream=True)) as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("data:"))
            assert client.post("/v1/chat/completions", json=chat_body(quick)).status_code == 200
            rest = list(lines)
        request_id = response.headers["x-request-id"]
    events = sse_events([first, *rest])
    assert events[0]["choices"] and len(events) == 2
    assert events[-1]["error"]["code"] == "upstream_timeout" and "no data" in events[-1]["error"]["message"]
    record = gateway.record(request_id)
    assert record["status"] == 504 and record["usage"]["completion_tokens"] == 1
    assert alpha.stats.streams_cancelled == 1  # the gateway closed the stalled connection


def test_a_stream_that_never_ends_is_cut_at_the_answer_timeout(gateway, upstreams):
    """An upstream that keeps sending and never ends its stream (never silent for the read timeout) is cut when the
    answer has taken GATEWAY_UPSTREAM_ANSWER_TIMEOUT_S (4 s here): an error event, the tokens already sent accounted,
    the upstream connection closed."""
    alpha = upstreams["alpha"]
    alpha.behaviour.chunks, alpha.behaviour.chunk_delay_s = 100_000, 0.05
    route = gateway.put_route(variants=[variant("a", alpha)])
    _, key = gateway.create_key()
    started = time.monotonic()
    with gateway.client(key) as client:
        with client.stream("POST", "/v1/chat/completions", json=chat_body(route, stream=True)) as response:
            events = sse_events(list(response.iter_lines()))
        request_id = response.headers["x-request-id"]
    assert time.monotonic() - started < 30  # cut, not run to the fake's 100,000 chunks
    assert len(events) > 10 and all(e.get("choices") is not None for e in events[:-1])
    assert (
        events[-1]["error"]["code"] == "upstream_timeout" and "did not end within 4 s" in events[-1]["error"]["message"]
    )
    record = gateway.record(request_id)
    assert record["status"] == 504 and record["usage"]["completion_tokens"] == len(events) - 1
    deadline = time.monotonic() + 5
    while alpha.stats.streams_cancelled < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alpha.stats.streams_cancelled == 1


MALFORMED = [
    b"data: not json\n\n",
    b"data: [1, 2]\n\n",
    b'data: {"choices": "nope"}\n\n',
    b'data: {"choices": [7, {"delta": "x"}, {"delta": {"content": 5}}]}\n\n',
    b'data: {"choices": [], "usage": {"prompt_tokens": "many"}}\n\n',
    b": a comment line\n\n",
    b"event: ping\n\n",
]


def test_malformed_sse_events_pass_through_without_breaking_the_stream(gateway, upstreams):
    """Events that are not OpenAI chunks reach the client as sent (the gateway does not rewrite a stream); the
    rest of the stream, its usage and the accounting are unaffected."""
    alpha = upstreams["alpha"]
    alpha.behaviour.raw_events = MALFORMED
    route = gateway.put_route(variants=[variant("a", alpha)])
    _, key = gateway.create_key()
    with gateway.client(key) as client:
        with client.stream("POST", "/v1/chat/completions", json=chat_body(route, stream=True)) as response:
            raw = response.read()
        after = client.post("/v1/chat/completions", json=chat_body(route))
    assert response.status_code == 200 and after.status_code == 200
    assert all(event in raw for event in MALFORMED) and raw.endswith(b"data: [DONE]\n\n")
    record = gateway.record(response.headers["x-request-id"])
    assert record["status"] == 200
    assert record["usage"] == {"prompt_tokens": 11, "completion_tokens": 5}  # the well-formed usage chunk
    assert record["answer"] == "alpha:a-model:0 tok1 tok2 tok3 tok4 "


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"choices": [{"message": {"content": "cut',
        b"[1, 2, 3]",
        b'{"choices": "nope"}',
    ],
)
def test_a_200_that_is_not_a_completion_is_a_502_and_counts_against_the_circuit(gateway, upstreams, body):
    alpha = upstreams["alpha"]
    alpha.behaviour.raw_body, alpha.behaviour.raw_content_type = body, "text/html"
    route = gateway.put_route(variants=[variant("a", alpha)])
    _, key = gateway.create_key()
    with gateway.client(key) as client:
        responses = [client.post("/v1/chat/completions", json=chat_body(route)) for _ in range(4)]
    for response in responses[:3]:
        assert response.status_code == 502, response.text[:300]
        assert response.json()["error"]["code"] == "upstream_invalid_response"
        assert response.headers["x-llmops-variant"] == "a"
    assert responses[3].status_code == 503 and responses[3].json()["error"]["code"] == "circuit_open"
    assert len(alpha.stats.requests) == 3
    record = gateway.record(responses[0].headers["x-request-id"])
    assert record["status"] == 502 and record["usage"]["prompt_tokens"] > 0 and record["answer"] is None


def test_a_malformed_usage_in_a_whole_answer_is_estimated_not_a_500(gateway, upstreams):
    alpha = upstreams["alpha"]
    answer = {"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": -5, "completion_tokens": "x"}}
    alpha.behaviour.raw_body = orjson.dumps(answer)
    route = gateway.put_route(variants=[variant("a", alpha)])
    _, key = gateway.create_key(limits={"tpm": 1_000_000})
    with gateway.client(key) as client:
        response = client.post("/v1/chat/completions", json=chat_body(route))
    assert response.status_code == 200 and response.json() == answer
    record = gateway.record(response.headers["x-request-id"])
    assert record["usage"]["prompt_tokens"] > 0 and record["usage"]["completion_tokens"] == 0


def test_the_gateway_keeps_serving_after_bad_upstreams(gateway, upstreams):
    """After every bad answer above, a plain request on a fresh route still works (no worker wedged)."""
    route = gateway.put_route(variants=[variant("b", upstreams["beta"])])
    _, key = gateway.create_key()
    with gateway.client(key) as client:
        assert client.post("/v1/chat/completions", json=chat_body(route)).status_code == 200
    assert "Traceback" not in gateway.logs()
