"""A batch on a worker's own engine, with real parts only where they matter: the official OpenAI SDK, the real
gateway (PostgreSQL, Redis), a real batch worker running vLLM's offline engine on the bundled model (CPU build,
reduced size) and the feedback service storing the request log. Fake upstreams stand only for the routes and lines
the engine does not serve, to show those still go through the serving path."""

import io
import json
import time
import uuid

import pytest
from openai import OpenAI

from llmops_common.contracts.models import BUNDLED_MODEL_NAME
from llmops_models.prepare import bundled_model_dir
from llmops_testkit.batch import FINISHED, BatchWorker, batch_env, chat_line, jsonl, logged, read_jsonl, sdk, wait_for
from llmops_testkit.gateway import variant
from llmops_testkit.inference import prepare_bundled_model

pytestmark = pytest.mark.timeout(600)  # vLLM starts in the worker (about 40 s on 2 cores)

MAX_MODEL_LEN = 512


@pytest.fixture(scope="module")
def stack(make_gateway, make_feedback, postgres_database_url, llmops_state_dir):
    prepare_bundled_model()
    feedback = make_feedback(sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'fb-engine-{uuid.uuid4().hex[:6]}.db'}")
    env = batch_env(
        "",
        GATEWAY_FILES_URL=str(llmops_state_dir / f"files-{uuid.uuid4().hex[:6]}"),
        GATEWAY_BATCH_SHARD_LINES="8",
        GATEWAY_BATCH_ENGINE_CHUNK_LINES="4",
        GATEWAY_BATCH_LEASE_S="30",  # the engine's first chunk waits for vLLM to start
    )
    gateway = make_gateway(sql_url=postgres_database_url, **env, **feedback.gateway_env())
    worker_env = {
        **gateway.env,
        "GATEWAY_BATCH_GATEWAY_URL": gateway.url,
        "GATEWAY_BATCH_ENGINE": "vllm",
        "GATEWAY_BATCH_ENGINE_MODEL": str(bundled_model_dir()),
        # float32: this CPU build's bfloat16 path is several times slower on CPUs without native bf16 (AVX2 only),
        # and the inference service serves the bundled model in float32 too. A fixed KV cache of 256 MiB (eleven
        # full contexts) instead of a share of RAM: nothing to size at start, and little to allocate.
        "GATEWAY_BATCH_ENGINE_ARGS": json.dumps(
            {
                "enforce_eager": True,
                "max_model_len": MAX_MODEL_LEN,
                "kv_cache_memory_bytes": 256 * 1024 * 1024,
                "dtype": "float32",
            }
        ),
    }
    worker = BatchWorker(env=worker_env, state_dir=gateway.state_dir, name="batch-engine").start()
    yield gateway, feedback, worker
    worker.stop()


def test_sdk_batch_runs_on_the_workers_vllm_engine(stack, upstreams):
    gateway, feedback, worker = stack
    # The engine serves the bundled model: lines whose route chooses that variant run on it. The variant's
    # upstream (a fake) then sees none of them.
    base = gateway.put_route(variants=[variant("base", upstreams["alpha"], model=BUNDLED_MODEL_NAME)])
    other = gateway.put_route(variants=[variant("other", upstreams["beta"], model="another-model")])
    key_id, key = gateway.create_key()
    client: OpenAI = sdk(gateway, key)
    questions = ["What is the capital of France?", "Name a color.", "Count to three.", "Say hello.", "Why rain?"]
    lines = [chat_line(f"q{i}", base, q, max_tokens=8, temperature=0) for i, q in enumerate(questions)]
    lines.append(chat_line("long", base, "word " * (MAX_MODEL_LEN + 50), max_tokens=8))  # over the context
    lines.append(chat_line("logprobs", base, "Hi.", max_tokens=4, logprobs=True))  # a field the engine leaves
    lines += [chat_line(f"o{i}", other, "Hi.", max_tokens=4) for i in range(2)]  # a variant it does not serve
    before_alpha, before_beta = len(upstreams["alpha"].stats.requests), len(upstreams["beta"].stats.requests)
    uploaded = client.files.create(file=("engine.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    batch = wait_for(client, batch.id, lambda b: b.status in FINISHED, timeout_s=300)
    assert batch.status == "completed", (batch, worker.log_path.read_text()[-3000:])
    assert (batch.request_counts.completed, batch.request_counts.failed) == (8, 1)

    output = {o["custom_id"]: o for o in read_jsonl(client.files.content(batch.output_file_id).content)}
    assert sorted(output) == sorted([f"q{i}" for i in range(5)] + ["logprobs", "o0", "o1"])
    for i in range(5):
        body = output[f"q{i}"]["response"]["body"]
        assert body["model"] == BUNDLED_MODEL_NAME and body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"].strip()  # the model's own words
        assert body["choices"][0]["finish_reason"] in ("stop", "length")
        assert 0 < body["usage"]["completion_tokens"] <= 8 and body["usage"]["prompt_tokens"] > 5
    assert output["logprobs"]["response"]["body"]["choices"][0]["message"]["content"].startswith("alpha:")
    assert output["o0"]["response"]["body"]["choices"][0]["message"]["content"].startswith("beta:another-model")
    # The engine's lines never reached the variant's upstream; the others did, once each.
    assert len(upstreams["alpha"].stats.requests) - before_alpha == 1
    assert len(upstreams["beta"].stats.requests) - before_beta == 2
    (error,) = read_jsonl(client.files.content(batch.error_file_id).content)
    assert error["custom_id"] == "long" and error["response"]["status_code"] == 400
    assert "maximum context length" in error["error"]["message"]

    # Accounted like online requests: the batch's usage, a request-log record per line marked with the batch (to
    # be rated and trained on), and the key's spend.
    usages = [o["response"]["body"]["usage"] for o in output.values()]
    assert batch.usage.output_tokens == sum(u["completion_tokens"] for u in usages)
    engine_ids = {output[f"q{i}"]["response"]["request_id"] for i in range(5)}
    records = {r["request_id"]: r for r in logged(feedback, engine_ids)}
    assert len(records) == 5
    for i in range(5):
        o = output[f"q{i}"]
        record = records[o["response"]["request_id"]]
        assert record["batch_id"] == batch.id and record["key_id"] == key_id and record["route"] == base
        assert record["variant"] == "base" and record["model"] == BUNDLED_MODEL_NAME and record["status"] == 200
        assert record["answer"] == o["response"]["body"]["choices"][0]["message"]["content"]
        assert record["completion_tokens"] == o["response"]["body"]["usage"]["completion_tokens"]
        assert record["prompt"]  # the question, as sent
    spend = spend_by_route(gateway, key_id, expected=9)
    assert {route: g["requests"] for route, g in spend.items()} == {base: 7, other: 2}  # the too-long line too
    # The key is charged exactly the tokens the output reports, line by line, whichever way a line ran.
    for route, ids in ((base, [f"q{i}" for i in range(5)] + ["logprobs"]), (other, ["o0", "o1"])):
        charged = spend[route]["prompt_tokens"] + spend[route]["completion_tokens"]
        assert charged == sum(output[i]["response"]["body"]["usage"]["total_tokens"] for i in ids)
    assert sum(g["prompt_tokens"] + g["completion_tokens"] for g in spend.values()) == batch.usage.total_tokens


def spend_by_route(gateway, key_id: str, *, expected: int, timeout_s: float = 20.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout_s
    with gateway.admin() as admin:
        while True:
            groups = admin.get("/admin/spend", params={"key": key_id, "by": "route"}).json()["groups"]
            found = {g["group"]: g for g in groups}
            if sum(g["requests"] for g in groups) >= expected or time.monotonic() > deadline:
                return found
            time.sleep(0.3)
