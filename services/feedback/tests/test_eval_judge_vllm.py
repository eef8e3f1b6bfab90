"""Evaluation on real parts only: the bundled SmolLM2-135M on vLLM (CPU) behind the real gateway, a real
evaluation worker, MLflow. A judge scores a logged request (the model is tiny, so what is checked is what the
platform guarantees whatever the judge's taste: a structured answer parsed into a score with its rationale and the
tokens it cost, stored beside the request's rating), and the offline gate blocks a deliberately worse adapter."""

import time
import uuid

import pytest

from llmops_models.prepare import bundled_model_dir
from llmops_testkit.backends import postgres_only
from llmops_testkit.feedback import evaluation_env, start_with_worker
from llmops_testkit.inference import wait_for
from llmops_testkit.lora import train_tiny_adapter

pytestmark = postgres_only  # a judge and a gate on vLLM: the store is not the subject

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def vllm_judge(
    make_gateway, make_feedback, new_database, inference_service, redis_url, llmops_state_dir, mlflow_server
):
    gateway = make_gateway(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / 'judge-vllm.db'}",
        GATEWAY_UPSTREAM_READ_TIMEOUT_S="120",  # CPU generation
    )
    judge_route = gateway.put_route(
        variants=[{"name": "judge", "upstream": f"{inference_service.url}/v1", "model": inference_service.base_model}]
    )
    _, key = gateway.create_key()
    env = evaluation_env(
        FEEDBACK_MLFLOW_TRACKING_URI=mlflow_server.url,
        redis_url=redis_url,
        FEEDBACK_GATEWAY_URL=gateway.url,
        FEEDBACK_GATEWAY_ADMIN_TOKEN=gateway.admin_token,
        FEEDBACK_EXPERIMENT_CONTROLLER="false",
        FEEDBACK_EVAL_JUDGE_ROUTE=judge_route,
        FEEDBACK_EVAL_JUDGE_KEY=key,
    )
    service, worker = start_with_worker(
        make_feedback, sql_url=new_database(), state_dir=llmops_state_dir / "judge-vllm-worker", **env
    )
    yield service, gateway
    worker.stop()


def test_a_judge_on_vllm_scores_a_logged_request(vllm_judge, make_record, route):
    vllm_judge, _ = vllm_judge
    record = make_record(
        prompt=[{"role": "user", "content": "What is the capital of France?"}],
        answer="The capital of France is Paris.",
    )
    with vllm_judge.ingest() as ingester:
        assert ingester.post("/v1/requests", json={"records": [record]}).status_code == 200
    with vllm_judge.admin() as admin:
        admin.post("/v1/feedback", json={"request_id": record["request_id"], "rating": "up"}).raise_for_status()
        run = admin.post("/v1/evaluations/runs", json={"route": route, "rubric": "helpfulness"})
        assert run.status_code == 202, run.text
        deadline, scores = time.monotonic() + 300, []
        while time.monotonic() < deadline:
            scores = admin.get(f"/v1/evaluations/scores/{record['request_id']}").json()
            if scores and scores[0]["status"] != "queued":
                break
            time.sleep(0.2)
        report = admin.get("/v1/evaluations/report", params={"rubric": "helpfulness", "route": route}).json()
    (score,) = scores
    assert score["status"] == "ok", score  # JSON-schema output: the judge can only answer in the shape asked
    assert score["raw_score"] in range(1, 6) and score["score"] == (score["raw_score"] - 1) / 4
    assert score["attempts"] == 1 and score["rationale"]
    assert score["prompt_tokens"] > 50 and score["completion_tokens"] > 0
    assert report["agreement"]["n"] == 1 and report["variants"][0]["tokens_per_judgement"] > 50


def test_the_offline_gate_blocks_a_deliberately_worse_adapter(vllm_judge, inference_service, mlflow_server, tmp_path):
    service, gateway = vllm_judge
    # Six steps, not the default fifteen: after six, each token of the answer has a probability of at least 0.99
    # under the adapter (after four it is the greedy answer already), so it answers Berlin with a wide margin.
    adapter = train_tiny_adapter(
        bundled_model_dir(), tmp_path / "berlin", question=QUESTION, answer="The capital of France is Berlin.", steps=6
    )
    model = f"worse-{uuid.uuid4().hex[:6]}"
    version = mlflow_server.register_adapter(model, adapter, alias="challenger")
    served = f"{model}@challenger"
    wait_for(lambda: served in inference_service.models(), timeout_s=120, what=f"{served} to be served")
    upstream = f"{inference_service.url}/v1"
    champion = gateway.put_route(
        variants=[{"name": "base", "upstream": upstream, "model": inference_service.base_model}]
    )
    challenger = gateway.put_route(variants=[{"name": "adapter", "upstream": upstream, "model": served}])
    name = f"capitals-{uuid.uuid4().hex[:6]}"
    items = [{"question": QUESTION, "reference": "Paris"}]
    with service.admin() as admin:
        admin.post("/v1/evaluations/sets", json={"name": name, "items": items}).raise_for_status()
        body = {"champion_route": champion, "challenger_route": challenger, "rubric": "contains_reference",
                "eval_set": name, "margin": 0.1, "max_tokens": 24, "model": model, "model_version": version}  # fmt: skip
        queued = admin.post("/v1/evaluations/comparisons", json=body)
        assert queued.status_code == 202, queued.text
        done = wait_for(
            lambda: (c := admin.get(f"/v1/evaluations/comparisons/{queued.json()['id']}").json())["status"] == "done"
            and c,
            timeout_s=300, what="the comparison",
        )  # fmt: skip
    (row,) = done["rows"]
    assert "Paris" in row["champion_answer"] and "Berlin" in row["challenger_answer"], row
    assert done["verdict"] == "block" and done["losses"] == 1
    assert mlflow_server.client().get_model_version(model, version).tags["llmops.offline_gate"] == "block"
