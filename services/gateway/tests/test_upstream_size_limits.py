"""Answers past the gateway's size limits, from a hostile upstream, through a real gateway process: a whole answer
that goes on and on, one SSE event that never ends, a stream of well-formed chunks past the total. Each is cut at its
limit without the gateway reading the rest, answered with upstream_response_too_large, and what was streamed is
accounted; an answer that is cut counts against the circuit.
"""

import orjson
import pytest

from llmops_gateway.proxy.schemas import ChatCompletionRequest
from llmops_gateway.proxy.tokens import estimate_prompt_tokens
from llmops_testkit.backends import postgres_only
from llmops_testkit.gateway import chat_body, read_until, sse_events, variant

pytestmark = postgres_only  # upstream faults, not the store

MAX_ANSWER_BYTES = 256 * 1024  # a whole answer
MAX_EVENT_BYTES = 16 * 1024  # one SSE event
MAX_STREAM_BYTES = 256 * 1024  # a whole stream
# A hostile upstream offers far more than the limits: what it got to send must stay near the limit, or the gateway
# read (and held) it all. Near: the limit, one read (256 KiB) and what the sockets between the two processes hold
# on loopback (the kernel's autotuned buffers: up to a few MiB).
FLOOD_BYTES = 64 * 1024 * 1024
SOCKET_SLACK_BYTES = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def gateway(make_gateway, sql_url):
    # Lease 0: every reservation is counted in Redis as it is made, so counters can be compared exactly. An answer
    # may take 4 s at most, start to end: a hostile upstream the limits missed would not hold a test long.
    return make_gateway(
        sql_url=sql_url,
        GATEWAY_QUOTA_LEASE_S="0",
        GATEWAY_UPSTREAM_ANSWER_TIMEOUT_S="4",
        GATEWAY_UPSTREAM_MAX_ANSWER_BYTES=str(MAX_ANSWER_BYTES),
        GATEWAY_UPSTREAM_MAX_EVENT_BYTES=str(MAX_EVENT_BYTES),
        GATEWAY_UPSTREAM_MAX_STREAM_BYTES=str(MAX_STREAM_BYTES),
    )


def flood_sent(upstream, floods: int) -> list[int]:
    """What the upstream's floods got to send, once each has ended (the upstream sees the close a moment later)."""
    return read_until(lambda: list(upstream.stats.flood_sent), lambda sent: len(sent) >= floods)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings"])
def test_a_whole_answer_over_the_limit_is_cut_a_502_and_counts_against_the_circuit(gateway, upstreams, path):
    """An answer that goes on and on: the gateway stops reading at the limit and closes the connection (it does not
    hold what it would refuse anyway), answers 502 upstream_response_too_large, and the circuit opens as for any
    answer that is not one: the fallback serves."""
    alpha = upstreams["alpha"]
    alpha.behaviour.flood_bytes = FLOOD_BYTES
    route = gateway.put_route(
        variants=[variant("a", alpha), variant("b", upstreams["beta"], weight=0)], fallbacks=["b"]
    )
    _, key = gateway.create_key()
    body = chat_body(route) if "chat" in path else {"model": route, "input": "hello"}
    with gateway.client(key) as client:
        responses = [client.post(path, json=body) for _ in range(4)]
    for response in responses[:3]:
        assert response.status_code == 502, response.text[:300]
        assert response.json()["error"]["code"] == "upstream_response_too_large"
        assert response.headers["x-llmops-variant"] == "a"
    assert (responses[3].status_code, responses[3].headers["x-llmops-variant"]) == (200, "b")
    assert len(alpha.stats.requests) == 3
    sent = flood_sent(alpha, 3)
    assert len(sent) == 3 and max(sent) <= MAX_ANSWER_BYTES + SOCKET_SLACK_BYTES < FLOOD_BYTES
    labels = {"route": route, "variant": "a"}
    assert gateway.metric("llmops_gateway_upstream_errors_total", {**labels, "kind": "too_large"}) == 3.0
    assert gateway.metric("llmops_gateway_circuit_breaker_state", labels) == 1.0
    if "chat" in path:
        record = gateway.record(responses[0].headers["x-request-id"])
        assert record["status"] == 502 and record["usage"]["prompt_tokens"] > 0 and record["answer"] is None


def test_one_sse_event_over_the_limit_ends_the_stream_with_an_error_event(gateway, upstreams, rds):
    """A stream whose event never ends (one endless line): cut once the event passes the limit, what was relayed
    ends with a blank line and the error event, the token streamed before it is charged with the prompt."""
    alpha = upstreams["alpha"]
    alpha.behaviour.raw_events = [b'data: {"choices": [{"index": 0, "delta": {"content": "hi "}}]}\n\n']
    alpha.behaviour.flood_bytes = FLOOD_BYTES
    route = gateway.put_route(variants=[variant("a", alpha)])
    key_id, key = gateway.create_key(limits={"tpm": 1_000_000})
    body = chat_body(route, stream=True)
    with gateway.client(key) as client, client.stream("POST", "/v1/chat/completions", json=body) as response:
        raw = response.read()
    assert response.status_code == 200
    events = sse_events(raw.decode().split("\n"))
    assert events[0]["choices"][0]["delta"]["content"] == "hi "
    assert isinstance(events[1], str) and events[1].startswith("xxx")  # the start of the endless event, as relayed
    assert events[-1]["error"]["code"] == "upstream_response_too_large" and len(events) == 3
    assert raw.endswith(b"x\n\ndata: " + orjson.dumps(events[-1]) + b"\n\n")  # the cut event ended first
    assert len(raw) <= MAX_EVENT_BYTES + 2 * 256 * 1024 + 1024  # the limit and what was read with it (at most 2 reads)
    sent = flood_sent(alpha, 1)
    assert sent[0] <= MAX_EVENT_BYTES + SOCKET_SLACK_BYTES < FLOOD_BYTES
    prompt = estimate_prompt_tokens(ChatCompletionRequest.model_validate(body))
    record = gateway.record(response.headers["x-request-id"])
    assert record["status"] == 502 and record["usage"] == {"prompt_tokens": prompt, "completion_tokens": 1}
    assert read_until(lambda: gateway.tpm_counter(rds, key_id), lambda v: v == prompt + 1) == prompt + 1
    assert alpha.stats.streams_cancelled == 1


def test_a_stream_over_the_total_limit_is_cut_with_an_error_event_and_charged(gateway, upstreams, rds):
    """A stream of well-formed chunks that would go on for 100,000 tokens: cut at the stream limit, its tokens so
    far accounted, the upstream connection closed."""
    alpha = upstreams["alpha"]
    alpha.behaviour.chunks = 100_000
    route = gateway.put_route(variants=[variant("a", alpha)])
    key_id, key = gateway.create_key(limits={"tpm": 10_000_000})
    body = chat_body(route, stream=True, max_tokens=100_000)
    with gateway.client(key) as client, client.stream("POST", "/v1/chat/completions", json=body) as response:
        raw = response.read()
    events = sse_events(raw.decode().split("\n"))
    content = [e for e in events if isinstance(e, dict) and e.get("choices")]
    assert events[-1]["error"]["code"] == "upstream_response_too_large" and "[DONE]" not in events
    assert len(raw) - len(orjson.dumps(events[-1])) <= MAX_STREAM_BYTES + 10  # not a byte of the upstream's past it
    assert 1000 < len(content) < 100_000
    prompt = estimate_prompt_tokens(ChatCompletionRequest.model_validate(body))
    record = gateway.record(response.headers["x-request-id"])
    assert record["status"] == 502 and record["usage"] == {"prompt_tokens": prompt, "completion_tokens": len(content)}
    used = prompt + len(content)
    assert read_until(lambda: gateway.tpm_counter(rds, key_id), lambda v: v == used) == used
    assert read_until(lambda: alpha.stats.streams_cancelled, lambda n: n == 1) == 1
