"""Eval sets and the offline gate on real processes: the feedback service and its evaluation worker on a real
Redis, a real gateway, a real MLflow server. The routes' upstreams are the fakes (each answers with its own name),
so which answer holds the reference is known: the gate's plumbing, verdict and MLflow record are under test. The
pairwise judge is a fake upstream scripted to prefer the champion's answers (and, on some questions, whichever
answer it is shown first). The gate blocking a trained adapter on vLLM is in test_eval_judge_vllm.py."""

import functools
import hashlib
import time
import uuid

import httpx
import orjson
import pytest

from llmops_testkit.backends import postgres_only
from llmops_testkit.fake_upstream import FakeUpstream
from llmops_testkit.feedback import evaluation_env, pairwise_verdict, start_with_worker
from llmops_testkit.gateway import variant


@pytest.fixture(scope="module")
def judge_upstream():
    upstream = FakeUpstream("judge").start()
    # The champion's answers ("alpha:...") win, except on a "biased" question, where the judge picks A whatever it says.
    upstream.behaviour.reply = functools.partial(pairwise_verdict, better="alpha:", position_bias="biased")
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def gate(
    make_gateway, make_feedback, new_database, redis_url, mlflow_server, llmops_state_dir, _fake_upstreams,
    judge_upstream,
):  # fmt: skip
    gateway = make_gateway(sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / 'gate-gateway.db'}")
    champion = gateway.put_route(variants=[variant("alpha", _fake_upstreams["alpha"])])
    challenger = gateway.put_route(variants=[variant("beta", _fake_upstreams["beta"])])
    judge = gateway.put_route(variants=[variant("judge", judge_upstream)])
    env = evaluation_env(
        redis_url=redis_url,
        FEEDBACK_GATEWAY_URL=gateway.url,
        FEEDBACK_GATEWAY_ADMIN_TOKEN=gateway.admin_token,
        FEEDBACK_MLFLOW_TRACKING_URI=mlflow_server.url,
        FEEDBACK_EXPERIMENT_CONTROLLER="false",
        FEEDBACK_EVAL_JUDGE_KEY=gateway.create_key()[1],
    )
    service, worker = start_with_worker(
        make_feedback, sql_url=new_database(), state_dir=llmops_state_dir / "gate-worker", **env
    )
    with service.admin() as admin:
        yield admin, service, champion, challenger, judge
    worker.stop()


def _finished(admin: httpx.Client, comparison_id: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = admin.get(f"/v1/evaluations/comparisons/{comparison_id}").json()
        if found["status"] == "done":
            return found
        time.sleep(0.2)
    raise AssertionError(f"comparison not done: {found}")


def test_eval_sets_are_versioned_by_content_and_exported(gate, expect_error):
    admin = gate[0]
    name = f"set-{uuid.uuid4().hex[:6]}"
    items = [{"question": "Who founded Quenterby?", "reference": "Odalys Brenvik", "source_document": "fact-01"}]
    first = admin.post("/v1/evaluations/sets", json={"name": name, "items": items})
    assert first.status_code == 201, first.text
    again = admin.post("/v1/evaluations/sets", json={"name": name, "items": items}).json()
    assert again["version"] == first.json()["version"]  # same items, same version, stored once
    changed = admin.post("/v1/evaluations/sets", json={"name": name, "items": items * 2}).json()
    assert changed["version"] != again["version"] and changed["size"] == 2
    export = admin.get(f"/v1/evaluations/sets/{name}/{again['version']}.jsonl")
    assert export.headers["content-type"].startswith("application/x-ndjson")
    assert hashlib.sha256(export.content).hexdigest().startswith(again["version"])
    assert [orjson.loads(line) for line in export.text.splitlines()] == items
    latest = admin.get(f"/v1/evaluations/sets/{name}/latest.jsonl")
    assert latest.headers["x-llmops-eval-set-version"] == changed["version"]
    expect_error(admin.get(f"/v1/evaluations/sets/{name}/0000000000000000.jsonl"), 404, "eval_set_not_found")
    expect_error(admin.post("/v1/evaluations/sets", json={"name": name, "items": []}), 422, "empty_eval_set")
    expect_error(admin.post("/v1/evaluations/sets", json={"name": name}), 422, "invalid_eval_set")
    expect_error(admin.post("/v1/evaluations/sets", json={"name": "bad name", "items": items}), 422)


def test_an_eval_set_from_feedback_takes_corrections_and_thumbs_up_answers(gate, make_record, route):
    admin, service, _, _, _ = gate
    corrected, liked, disliked = make_record(), make_record(answer="A fine answer."), make_record()
    with service.ingest() as ingester:
        assert ingester.post("/v1/requests", json={"records": [corrected, liked, disliked]}).status_code == 200
    for record, rating in ((corrected, {"rating": "down", "correction": "The right answer."}),
                           (liked, {"rating": "up"}), (disliked, {"rating": "down"})):  # fmt: skip
        admin.post("/v1/feedback", json={"request_id": record["request_id"], **rating}).raise_for_status()
    body = {"name": f"fb-{uuid.uuid4().hex[:6]}", "from_feedback": {"route": route}}
    created = admin.post("/v1/evaluations/sets", json=body).json()
    assert created["origin"] == "feedback" and created["size"] == 2
    lines = admin.get(f"/v1/evaluations/sets/{body['name']}/latest.jsonl").text.splitlines()
    found = {row["request_id"]: row for row in map(orjson.loads, lines)}
    assert found[corrected["request_id"]]["reference"] == "The right answer."
    assert found[corrected["request_id"]]["origin"] == "correction"
    assert found[liked["request_id"]] == {
        "question": liked["prompt"][1]["content"],
        "reference": "A fine answer.", "request_id": liked["request_id"], "origin": "thumbs_up",
    }  # fmt: skip
    assert disliked["request_id"] not in found  # a thumbs down without a correction names no right answer


@postgres_only  # the gate's run (worker, judge, MLflow), not the store
def test_the_gate_blocks_a_worse_challenger_and_logs_the_run_to_mlflow(gate, mlflow_server, expect_error):
    admin, _, champion, challenger, _ = gate
    name = f"gate-{uuid.uuid4().hex[:6]}"
    # The fake upstreams answer "<name>:<model>:0 tok1 ...": the champion's answers hold the reference, the
    # challenger's never do.
    items = [{"question": f"question {i}", "reference": "alpha"} for i in range(5)]
    admin.post("/v1/evaluations/sets", json={"name": name, "items": items}).raise_for_status()
    client = mlflow_server.client()
    model = f"gated-{uuid.uuid4().hex[:6]}"
    client.create_registered_model(model)
    version = client.create_model_version(model, source="s3://llmops-tests/adapter").version
    body = {"champion_route": champion, "challenger_route": challenger, "rubric": "contains_reference",
            "eval_set": name, "margin": 0.1, "model": model, "model_version": version}  # fmt: skip
    queued = admin.post("/v1/evaluations/comparisons", json=body)
    assert queued.status_code == 202, queued.text
    done = _finished(admin, queued.json()["id"])
    assert (done["wins"], done["ties"], done["losses"]) == (0, 0, 5)
    assert done["verdict"] == "block" and "losses exceed wins by 100.0%" in done["reason"]
    assert all(r["champion_answer"].startswith("alpha:") and r["outcome"] == "loss" for r in done["rows"])
    run = client.get_run(done["mlflow_run_id"])
    assert run.data.metrics["loss_rate"] == 1.0 and run.data.metrics["blocked"] == 1.0
    assert run.data.params["rubric"] == "contains_reference" and run.data.tags["llmops.verdict"] == "block"
    with open(client.download_artifacts(run.info.run_id, "offline_gate_rows.json"), "rb") as f:
        table = orjson.loads(f.read())
    assert len(table["data"]) == 5 and table["columns"][4] == "outcome"
    tags = client.get_model_version(model, version).tags
    assert tags["llmops.offline_gate"] == "block" and tags["llmops.offline_gate_run"] == run.info.run_id

    # The same challenger against itself holds (all ties).
    same = admin.post("/v1/evaluations/comparisons", json=body | {"challenger_route": champion, "model": None})
    held = _finished(admin, same.json()["id"])
    assert (held["ties"], held["verdict"]) == (5, "pass")

    expect_error(admin.post("/v1/evaluations/comparisons", json=body | {"rubric": "nope"}), 404, "rubric_not_found")
    expect_error(admin.post("/v1/evaluations/comparisons", json=body | {"challenger_route": "nope"}), 404,
                 "route_not_found")  # fmt: skip
    expect_error(admin.post("/v1/evaluations/comparisons", json=body | {"rubric": "pairwise"}), 422, "no_judge_route")
    expect_error(admin.post("/v1/evaluations/comparisons", json=body | {"eval_set": "missing"}), 404,
                 "eval_set_not_found")  # fmt: skip
    expect_error(admin.get("/v1/evaluations/comparisons/cmp_nothing"), 404, "comparison_not_found")


@postgres_only  # the gate's run (worker, judge, MLflow), not the store
def test_the_cli_creates_a_set_and_runs_the_gate(gate, tmp_path):
    from typer.testing import CliRunner

    from llmops_cli.main import app

    _, service, champion, challenger, _ = gate
    env = {"LLMOPS_ADMIN_TOKEN": service.admin_token, "LLMOPS_FEEDBACK_URL": service.url}
    source = tmp_path / "set.jsonl"
    source.write_text(
        "".join(orjson.dumps({"question": f"q{i}", "reference": "beta"}).decode() + "\n" for i in range(3))
    )
    name = f"cli-{uuid.uuid4().hex[:6]}"
    runner = CliRunner()
    created = runner.invoke(app, ["eval", "sets", "create", name, "--file", str(source)], env=env)
    assert created.exit_code == 0 and "3 items" in created.output, created.output
    out = tmp_path / "out.jsonl"
    exported = runner.invoke(app, ["eval", "sets", "export", name, "--out", str(out)], env=env)
    assert exported.exit_code == 0 and out.read_text() == source.read_text()
    args = ["eval", "compare", "--champion", champion, "--challenger", challenger, "--set", name,
            "--rubric", "contains_reference"]  # fmt: skip
    passed = runner.invoke(app, args, env=env)  # the challenger (beta) holds the reference this time
    assert passed.exit_code == 0 and "PASS" in passed.output and "3 wins" in passed.output, passed.output
    swapped = ["eval", "compare", "--champion", challenger, "--challenger", champion, "--set", name,
               "--rubric", "contains_reference"]  # fmt: skip
    blocked = runner.invoke(app, swapped, env=env)
    assert blocked.exit_code == 2 and "BLOCK" in blocked.output, blocked.output


@postgres_only  # the gate's run (worker, judge, MLflow), not the store
def test_the_pairwise_gate_swaps_positions_and_blocks_by_the_margin(gate, judge_upstream, mlflow_server):
    admin, _, champion, challenger, judge = gate
    judge_upstream.stats.requests.clear()
    name = f"pairwise-{uuid.uuid4().hex[:6]}"
    # One question the judge decides on content (the champion's answer wins in both positions: a loss), three on
    # which it prefers the first answer shown (champion first, then challenger first: the swap makes them ties).
    items = [{"question": "question 0"}] + [{"question": f"biased question {i}"} for i in range(1, 4)]
    admin.post("/v1/evaluations/sets", json={"name": name, "items": items}).raise_for_status()
    client = mlflow_server.client()
    model = f"pairwise-{uuid.uuid4().hex[:6]}"
    client.create_registered_model(model)
    version = client.create_model_version(model, source="s3://llmops-tests/adapter").version
    body = {"champion_route": champion, "challenger_route": challenger, "judge_route": judge, "eval_set": name,
            "margin": 0.2, "model": model, "model_version": version}  # fmt: skip
    blocked = _finished(admin, admin.post("/v1/evaluations/comparisons", json=body).json()["id"])
    # 1 loss in 4 judged rows: losses exceed wins by 25%, over the 20% margin.
    assert (blocked["wins"], blocked["ties"], blocked["losses"]) == (0, 3, 1)
    assert blocked["verdict"] == "block" and "by 25.0% > margin 20.0%" in blocked["reason"]
    outcomes = {r["question"]: (r["outcome"], r["detail"]) for r in blocked["rows"]}
    assert outcomes["question 0"] == ("loss", "champion as A: A; challenger as A: B")
    assert outcomes["biased question 1"] == ("tie", "champion as A: A; challenger as A: A")
    # The judge was asked twice per row, through the gateway, with the answers in both orders and JSON output.
    shown = [r["messages"][-1]["content"] for r in judge_upstream.stats.requests]
    assert len(shown) == 8 and all(r["response_format"]["type"] == "json_schema" for r in judge_upstream.stats.requests)
    firsts = sorted(p.split("Answer A:\n", 1)[1].split(":", 1)[0] for p in shown)
    assert firsts == ["alpha"] * 4 + ["beta"] * 4
    assert blocked["tokens"] > 0
    run = client.get_run(blocked["mlflow_run_id"])
    assert run.data.params["rubric"] == "pairwise" and run.data.params["judge_route"] == judge
    assert client.get_model_version(model, version).tags["llmops.offline_gate"] == "block"

    # The same rows within a wider margin pass; the version's tag follows the latest verdict.
    passed = _finished(admin, admin.post("/v1/evaluations/comparisons", json=body | {"margin": 0.3}).json()["id"])
    assert (passed["ties"], passed["losses"], passed["verdict"]) == (3, 1, "pass")
    assert client.get_model_version(model, version).tags["llmops.offline_gate"] == "pass"


def test_the_gate_replays_logged_prompts_from_the_cli(gate, make_record, route):
    from typer.testing import CliRunner

    from llmops_cli.main import app

    _, service, champion, challenger, judge = gate
    asked, again = make_record(), make_record()
    again["prompt"] = asked["prompt"]  # the same question asked twice is replayed once
    failed, elsewhere = make_record(status=500, answer=None), make_record(route=f"{route}-other")
    with service.ingest() as ingester:
        batch = {"records": [asked, again, failed, elsewhere, make_record()]}
        assert ingester.post("/v1/requests", json=batch).status_code == 200
    env = {"LLMOPS_ADMIN_TOKEN": service.admin_token, "LLMOPS_FEEDBACK_URL": service.url}
    args = ["eval", "compare", "--champion", champion, "--challenger", challenger, "--replay-route", route,
            "--since", "1h", "--judge-route", judge, "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, result.output  # blocked: the judge prefers the champion's answer every time
    found = orjson.loads(result.output[result.output.index("{") :])
    assert found["spec"]["eval_set"] is None and found["spec"]["rubric"] == "pairwise"
    assert sorted(r["question"] for r in found["rows"]) == sorted(
        {asked["prompt"][1]["content"], batch["records"][4]["prompt"][1]["content"]}
    )
    assert (found["losses"], found["verdict"]) == (2, "block")
