"""Evaluation on real parts: the feedback service and its evaluation worker (Celery on a real Redis) as processes,
and a real gateway in front of the judge. The judge's upstream here is the fake, which never answers with a score:
what is under test is the plumbing (queueing, failed judgements, tokens, 429s) and the agreement readout; a real
judge on vLLM is in test_eval_judge_vllm.py."""

import json
import random
import time

import pytest

from llmops_feedback.evaluation.agreement import cohen_kappa
from llmops_feedback.evaluation.service import in_sample
from llmops_testkit.backends import postgres_only
from llmops_testkit.feedback import evaluation_env, start_with_worker
from llmops_testkit.gateway import chat_body, variant

SAMPLE_RATE = 0.5


@pytest.fixture(scope="module")
def judge_gateway(make_gateway, llmops_state_dir, _fake_upstreams):
    gateway = make_gateway(sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / 'eval-gateway.db'}")
    route = gateway.put_route(variants=[variant("alpha", _fake_upstreams["alpha"])])
    return gateway, route


@pytest.fixture(scope="module")
def evaluation(make_feedback, new_database, redis_url, judge_gateway, llmops_state_dir):
    """A feedback service with evaluation on (online sample: exact_match on half the traffic) and one worker."""
    gateway, route = judge_gateway
    _, judge_key = gateway.create_key()
    env = evaluation_env(
        redis_url=redis_url,
        FEEDBACK_GATEWAY_URL=gateway.url,
        FEEDBACK_GATEWAY_ADMIN_TOKEN=gateway.admin_token,
        FEEDBACK_EXPERIMENT_CONTROLLER="false",
        FEEDBACK_EVAL_JUDGE_ROUTE=route,
        FEEDBACK_EVAL_JUDGE_KEY=judge_key,
        FEEDBACK_EVAL_JUDGE_RETRIES="0",
        FEEDBACK_EVAL_SAMPLE_RATE=str(SAMPLE_RATE),
        FEEDBACK_EVAL_ONLINE_RUBRICS='["exact_match"]',
        FEEDBACK_EVAL_SAMPLE_INTERVAL_S="0.3",
    )
    service, worker = start_with_worker(
        make_feedback, sql_url=new_database(), state_dir=llmops_state_dir / "eval-worker", **env
    )
    yield service, worker
    worker.stop()


@pytest.fixture
def eval_admin(evaluation):
    with evaluation[0].admin() as client:
        yield client


def _post(client, *records):
    response = client.post("/v1/requests", json={"records": list(records)})
    assert response.status_code == 200, response.text


def _wait_scored(admin, request_id: str, rubric: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        scores = admin.get(f"/v1/evaluations/scores/{request_id}").raise_for_status().json()
        done = [s for s in scores if s["rubric"] == rubric and s["status"] != "queued"]
        if done:
            return done[0]
        time.sleep(0.2)
    raise AssertionError(f"{request_id} not scored with {rubric} within {timeout_s}s: {scores}")


def test_rubrics_are_listed_and_unknown_ones_refused(eval_admin, expect_error, route):
    rubrics = {r["name"]: r for r in eval_admin.get("/v1/evaluations/rubrics").json()}
    assert {"correctness", "groundedness", "helpfulness", "exact_match", "contains_reference", "citation"} <= set(
        rubrics
    )
    assert rubrics["groundedness"]["needs"] == "sources" and rubrics["correctness"]["key"] == "correctness@v1"
    expect_error(eval_admin.get("/v1/evaluations/report", params={"rubric": "nope"}), 404, "rubric_not_found")
    expect_error(
        eval_admin.post("/v1/evaluations/runs", json={"route": route, "rubric": "nope"}), 404, "rubric_not_found"
    )
    body = {"route": route, "rubric": "helpfulness", "judge_route": "no-such-route"}
    assert expect_error(eval_admin.post("/v1/evaluations/runs", json=body), 404, "route_not_found")["param"] == (
        "judge_route"
    )
    # A route neither logged nor on the gateway is a typo, not an empty run.
    unknown = expect_error(eval_admin.post("/v1/evaluations/runs", json={"route": route, "rubric": "exact_match"}),
                           404, "route_not_found")  # fmt: skip
    assert unknown["param"] == "route"
    expect_error(eval_admin.post("/v1/evaluations/runs", json={"route": route, "rubric": "helpfulness", "x": 1}), 422)
    bad_score = {"request_id": "r", "rubric": "helpfulness", "scorer": "ext", "score": 1.5}
    expect_error(eval_admin.post("/v1/evaluations/scores", json=bad_score), 422)
    missing = {"request_id": "missing", "rubric": "helpfulness", "scorer": "ext", "score": 0.5}
    expect_error(eval_admin.post("/v1/evaluations/scores", json=missing), 404, "request_not_found")


def test_a_gateway_route_with_nothing_logged_yet_is_an_empty_run(eval_admin, judge_gateway):
    _, gateway_route = judge_gateway  # its requests are not logged here: that gateway has no request log sink
    run = eval_admin.post("/v1/evaluations/runs", json={"route": gateway_route, "rubric": "exact_match"})
    assert run.status_code == 202, run.text
    assert run.json()["queued"] == 0


def test_the_report_gives_agreement_with_the_thumbs_of_the_same_requests(evaluation, eval_admin, make_record, route):
    service, _ = evaluation
    rng = random.Random(18)
    records = [make_record(variant="a" if i % 2 else "b") for i in range(60)]
    with service.ingest() as ingester:
        _post(ingester, *records)
    pairs = []
    for record in records:
        human = rng.random() < 0.6
        judge = human if rng.random() < 0.8 else not human
        score = rng.choice([0.75, 1.0]) if judge else rng.choice([0.0, 0.25])
        rid = record["request_id"]
        eval_admin.post(
            "/v1/feedback", json={"request_id": rid, "rating": "up" if human else "down"}
        ).raise_for_status()
        body = {
            "request_id": rid,
            "rubric": "helpfulness",
            "scorer": "external:test",
            "score": score,
            "prompt_tokens": 100,
            "completion_tokens": 20,
        }
        assert eval_admin.post("/v1/evaluations/scores", json=body).status_code == 201
        pairs.append((human, judge))
    report = eval_admin.get("/v1/evaluations/report", params={"rubric": "helpfulness", "route": route}).json()
    expected = cohen_kappa(pairs)
    agreement = report["agreement"]
    assert agreement["n"] == 60 and agreement["confusion"] == expected.confusion
    assert agreement["kappa"] == pytest.approx(expected.kappa)
    assert agreement["trust"] == expected.trust
    assert {v["variant"] for v in report["variants"]} == {"a", "b"}
    for v in report["variants"]:
        assert v["scored"] == 30 and v["tokens_per_judgement"] == 120 and sum(v["histogram"]) == 30


def test_deterministic_scores_on_the_worker_use_corrections_as_references(evaluation, eval_admin, make_record, route):
    service, _ = evaluation
    right = make_record(answer="It was founded in 1712 by Odalys Brenvik.")
    wrong = make_record(answer="Nobody knows who founded it.")
    unrated = make_record(answer="Odalys Brenvik.")
    with service.ingest() as ingester:
        _post(ingester, right, wrong, unrated)
    for record in (right, wrong):
        rated = {
            "request_id": record["request_id"],
            "rating": "down",
            "correction": "Odalys Brenvik founded it in 1712.",
        }
        eval_admin.post("/v1/feedback", json=rated).raise_for_status()
    run = eval_admin.post("/v1/evaluations/runs", json={"route": route, "rubric": "contains_reference"})
    assert run.status_code == 202, run.text
    assert set(run.json()["request_ids"]) == {r["request_id"] for r in (right, wrong, unrated)}
    assert _wait_scored(eval_admin, right["request_id"], "contains_reference")["score"] == 1.0
    wrong_score = _wait_scored(eval_admin, wrong["request_id"], "contains_reference")
    assert wrong_score["score"] < 0.5 and "1 of 4 reference words" in wrong_score["rationale"]  # only "founded"
    skipped = _wait_scored(eval_admin, unrated["request_id"], "contains_reference")
    assert skipped["status"] == "skipped" and "no reference" in skipped["rationale"]
    again = eval_admin.post("/v1/evaluations/runs", json={"route": route, "rubric": "contains_reference"})
    assert again.json()["queued"] == 0  # scored already: a run only queues what this scorer has not scored


@postgres_only  # the worker's judge calls, not the store
def test_a_judge_answer_without_a_score_is_a_failed_judgement_with_its_tokens(
    evaluation, eval_admin, make_record, route
):
    service, _ = evaluation
    record = make_record()
    with service.ingest() as ingester:
        _post(ingester, record)
    run = eval_admin.post("/v1/evaluations/runs", json={"route": route, "rubric": "helpfulness"})
    assert run.status_code == 202 and run.json()["scorer"].startswith("judge:")
    scored = _wait_scored(eval_admin, record["request_id"], "helpfulness")
    assert scored["status"] == "failed" and scored["score"] is None
    assert scored["attempts"] == 3 and "no score" in scored["rationale"]
    # The fake upstream counts 11 prompt tokens and one completion token per word it says, each attempt.
    assert scored["prompt_tokens"] == 3 * 11 and scored["completion_tokens"] > 0
    report = eval_admin.get("/v1/evaluations/report", params={"rubric": "helpfulness", "route": route}).json()
    assert report["variants"][0]["failed"] == 1 and report["variants"][0]["scored"] == 0


@postgres_only  # the gateway's quota on the judge's key, not the store
def test_a_judge_over_its_quota_surfaces_the_429(
    make_feedback, new_database, redis_url, judge_gateway, make_record, route, llmops_state_dir
):
    gateway, judge_route = judge_gateway
    _, key = gateway.create_key(limits={"rpm": 1})
    with gateway.client(key) as client:  # the key's one request of the minute
        assert client.post("/v1/chat/completions", json=chat_body(judge_route)).status_code == 200
    env = evaluation_env(redis_url=redis_url, FEEDBACK_GATEWAY_URL=gateway.url,
                         FEEDBACK_GATEWAY_ADMIN_TOKEN=gateway.admin_token, FEEDBACK_EXPERIMENT_CONTROLLER="false",
                         FEEDBACK_EVAL_JUDGE_ROUTE=judge_route, FEEDBACK_EVAL_JUDGE_KEY=key,
                         FEEDBACK_EVAL_JUDGE_RETRIES="0")  # fmt: skip
    service, worker = start_with_worker(
        make_feedback, sql_url=new_database(), state_dir=llmops_state_dir / "eval-worker-429", **env
    )
    try:
        record = make_record()
        with service.ingest() as ingester:
            _post(ingester, record)
        with service.admin() as admin:
            assert admin.post("/v1/evaluations/runs", json={"route": route, "rubric": "helpfulness"}).status_code == 202
            scored = _wait_scored(admin, record["request_id"], "helpfulness")
    finally:
        worker.stop()
    assert scored["status"] == "failed" and "429" in scored["rationale"], scored


def test_online_scoring_takes_the_configured_sample_of_live_traffic(evaluation, eval_admin, make_record):
    service, _ = evaluation
    # Started now, as live traffic is: the sampler looks back four intervals (1.2 s here) for late records, and
    # make_record's default (a second ago) left a loaded machine 0.2 s to ingest them before they fell out of sight.
    records = [make_record(started_at=time.time()) for _ in range(40)]
    with service.ingest() as ingester:
        _post(ingester, *records)
    sampled = {r["request_id"] for r in records if in_sample(r["request_id"], SAMPLE_RATE)}
    assert 5 < len(sampled) < 35  # the hash splits about in half; the exact set is what the service must take
    for request_id in sampled:
        scored = _wait_scored(eval_admin, request_id, "exact_match")
        assert scored["status"] == "skipped" and scored["rationale"].startswith("no reference")
    time.sleep(1.0)  # three more sampling passes: none of them may take a request outside the sample
    for record in records:
        if record["request_id"] not in sampled:
            assert eval_admin.get(f"/v1/evaluations/scores/{record['request_id']}").json() == []


@postgres_only  # the CLI, not the store
def test_the_cli_runs_an_evaluation_and_reports_agreement_with_a_plot(evaluation, make_record, route, tmp_path):
    from typer.testing import CliRunner

    from llmops_cli.main import app

    service, _ = evaluation
    reference = "Odalys Brenvik founded it in 1712."
    records = [make_record(answer=reference if i % 2 else "I do not know.") for i in range(6)]
    with service.ingest() as ingester:
        _post(ingester, *records)
    with service.admin() as admin:
        for i, record in enumerate(records):  # people agree with the scorer on all but the last
            up = bool(i % 2) != (i == 5)
            rating = {"request_id": record["request_id"], "rating": "up" if up else "down", "correction": reference}
            admin.post("/v1/feedback", json=rating).raise_for_status()
    runner = CliRunner()
    env = {"LLMOPS_ADMIN_TOKEN": service.admin_token, "LLMOPS_FEEDBACK_URL": service.url}
    result = runner.invoke(app, ["eval", "run", "--route", route, "--rubric", "contains_reference", "--json"], env=env)
    assert result.exit_code == 0, result.output
    found = json.loads(result.output[result.output.index("{") :])
    assert found["rubric"] == "contains_reference@v1" and found["variants"][0]["scored"] == 6
    assert found["agreement"]["n"] == 6 and found["agreement"]["confusion"] == {
        "up": {"up": 2, "down": 0},  # people up on requests 1 and 3, which hold the reference
        "down": {"up": 1, "down": 3},  # request 5 holds it, and was rated down
    }
    assert found["agreement"]["trust"].startswith("Too few")
    plot = tmp_path / "eval.png"
    args = ["eval", "report", "--rubric", "contains_reference", "--route", route, "--plot", str(plot)]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "kappa" in result.output and "Too few" in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    unknown = runner.invoke(app, ["eval", "report", "--rubric", "nope"], env=env)
    assert unknown.exit_code == 1 and "unknown rubric" in unknown.output


@postgres_only  # the worker's embedding model, not the store
def test_embedding_similarity_runs_on_the_worker(evaluation, eval_admin, make_record, route):
    service, _ = evaluation
    close, far = (
        make_record(answer="Odalys Brenvik founded the town in 1712."),
        make_record(answer="Bananas are yellow."),
    )
    with service.ingest() as ingester:
        _post(ingester, close, far)
    for record in (close, far):
        rated = {
            "request_id": record["request_id"],
            "rating": "down",
            "correction": "It was founded by Odalys Brenvik.",
        }
        eval_admin.post("/v1/feedback", json=rated).raise_for_status()
    assert (
        eval_admin.post("/v1/evaluations/runs", json={"route": route, "rubric": "embedding_similarity"}).status_code
        == 202
    )
    near = _wait_scored(eval_admin, close["request_id"], "embedding_similarity")
    away = _wait_scored(eval_admin, far["request_id"], "embedding_similarity")
    assert near["status"] == away["status"] == "ok" and near["score"] > 0.6 > away["score"], (near, away)
