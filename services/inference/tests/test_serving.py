"""The base model on a real vLLM (CPU), through a real gateway and directly: answers, streaming, errors, metrics."""

import time

import httpx
import orjson
import pytest
from openai import OpenAI

from llmops_testkit.inference import chat_text

FRANCE = "What is the capital of France?"


def test_chat_through_the_gateway_mentions_paris(gateway_to_inference):
    gateway, key = gateway_to_inference
    with gateway.client(key) as client:
        response = client.post(
            "/v1/chat/completions",
            json={
                "model": "smollm2",
                "messages": [{"role": "user", "content": FRANCE}],
                "temperature": 0,
                "max_tokens": 24,
            },
        )
    assert response.status_code == 200, response.text
    assert "Paris" in response.json()["choices"][0]["message"]["content"]
    assert response.json()["usage"]["completion_tokens"] > 0
    assert response.headers["x-llmops-variant"] == "inference"


def test_text_completion_through_the_gateway(gateway_to_inference):
    gateway, key = gateway_to_inference
    with gateway.client(key) as client:
        response = client.post(
            "/v1/completions",
            json={
                "model": "smollm2",
                "prompt": "The capital of France is",
                "temperature": 0,
                "max_tokens": 8,
            },
        )
    assert response.status_code == 200, response.text
    assert "Paris" in response.json()["choices"][0]["text"]


def test_streaming_through_the_gateway_arrives_chunk_by_chunk(gateway_to_inference):
    gateway, key = gateway_to_inference
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": FRANCE}],
        "temperature": 0,
        "max_tokens": 32,
        "stream": True,
    }
    arrivals, pieces, usage, done = [], [], None, False
    with gateway.client(key) as client, client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                continue
            chunk = orjson.loads(line[6:])
            usage = chunk.get("usage") or usage
            for choice in chunk["choices"]:
                if choice["delta"].get("content"):
                    pieces.append(choice["delta"]["content"])
                    arrivals.append(time.perf_counter())
    assert done and "Paris" in "".join(pieces)
    assert len(pieces) > 3 and usage["completion_tokens"] >= len(pieces)  # the gateway asked for the usage chunk
    assert arrivals[-1] - arrivals[0] > 0.05  # tokens arrived as generated, not in one buffered block


def test_openai_sdk_streams_directly_from_the_inference_service(inference_service, base_model):
    client = OpenAI(base_url=f"{inference_service.url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model=base_model, messages=[{"role": "user", "content": FRANCE}], temperature=0, max_tokens=24, stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert "Paris" in text


def test_models_lists_the_base_model(inference_service, base_model):
    with inference_service.client() as client:
        models = client.get("/v1/models").json()["data"]
    base = next(m for m in models if m["id"] == base_model)
    assert base["parent"] is None and base["max_model_len"] == 2048


def test_unknown_model_is_a_404_in_openai_format(inference_service, gateway_to_inference):
    with inference_service.client() as client:
        direct = client.post(
            "/v1/chat/completions",
            json={
                "model": "no-such-model",
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    assert direct.status_code == 404
    assert direct.json()["error"] == {
        "message": "The model 'no-such-model' does not exist",
        "type": "not_found_error",
        "code": "model_not_found",
        "param": None,
    }
    gateway, key = gateway_to_inference
    gateway.put_route(
        "ghost",
        variants=[
            {"name": "inference", "upstream": f"{inference_service.url}/v1", "model": "no-such-adapter", "weight": 1}
        ],
    )
    with gateway.client(key) as client:
        relayed = client.post(
            "/v1/chat/completions",
            json={
                "model": "ghost",
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    assert relayed.status_code == 404 and relayed.json()["error"]["code"] == "model_not_found"


HI = b'"messages": [{"role": "user", "content": "hi"}]'


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"model": ', 400, "invalid_json"),
        (b'["a list"]', 400, "invalid_json"),
        (b"{" + HI + b"}", 400, "invalid_request"),
        (b'{"model": 7, "messages": []}', 400, "invalid_request"),
        (b'{"model": "BASE", "messages": "not a list"}', 400, "invalid_request"),
        (b'{"model": "BASE", ' + HI + b', "max_tokens": 100000}', 400, "invalid_request"),
        (b'{"model": "BASE", ' + HI + b', "temperature": "hot"}', 400, "invalid_request"),
    ],
)
def test_bad_input_is_a_clear_openai_error_never_a_500(inference_service, base_model, body, status, code):
    with inference_service.client() as client:
        response = client.post(
            "/v1/chat/completions",
            content=body.replace(b"BASE", base_model.encode()),
            headers={"content-type": "application/json"},
        )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["type"] == "invalid_request_error" and error["message"]


def test_readiness_health_and_both_metrics_endpoints(inference_service):
    status, body = inference_service.readiness()
    assert status == 200 and body["checks"]["vllm"] == "ok" and body["checks"]["adapters"] == "ok"
    assert httpx.get(f"{inference_service.url}/healthz").status_code == 200
    own = httpx.get(f"{inference_service.url}/metrics").text
    assert "llmops_inference_vllm_up 1.0" in own and "llmops_inference_vllm_start_seconds" in own
    assert 'llmops_inference_requests_total{endpoint="chat"' in own
    # vLLM's own metrics stay reachable on its port; its API does not answer anyone but the service.
    assert "vllm:" in httpx.get(f"{inference_service.vllm_url}/metrics").text
    assert httpx.get(f"{inference_service.vllm_url}/v1/models").status_code == 401


def test_admin_endpoints_need_the_admin_token(inference_service):
    with inference_service.client() as client:
        assert client.get("/admin/engine").status_code == 401
        wrong = client.get("/admin/adapters", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_admin_token"
    engine = inference_service.engine()
    assert engine["state"] == "up" and engine["pid"] and engine["generation"] >= 1


def test_chat_directly_on_the_inference_service(inference_service, base_model):
    with inference_service.client() as client:
        assert "Paris" in chat_text(client, base_model, FRANCE)
