"""The offline gate inside the retraining loop, on real processes: the feedback service and its controller, an
evaluation worker on a real Redis, a real gateway, a real MLflow registry. The test starts where a training job
has succeeded and its adapter is served (the job's outcome is written on the policy as the controller records it;
training itself is test_retraining.py's): the adapter is a fake upstream answering under the registered name, the
champion another, and the pairwise judge a fake upstream scripted to prefer the champion's answers."""

import asyncio
import functools
import uuid

import orjson
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from llmops_feedback.retraining.models import RetrainingPolicy
from llmops_testkit.backends import postgres_only
from llmops_testkit.fake_upstream import FakeUpstream
from llmops_testkit.feedback import evaluation_env, pairwise_verdict, start_with_worker
from llmops_testkit.gateway import variant
from llmops_testkit.inference import wait_for

# The loop end to end (controller, worker, gateway, registry): the store is not the subject.
pytestmark = postgres_only


@pytest.fixture(scope="module")
def judge_upstream():
    upstream = FakeUpstream("judge").start()
    upstream.behaviour.reply = functools.partial(pairwise_verdict, better="alpha:")
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def loop(make_gateway, make_feedback, new_database, redis_url, mlflow_server, llmops_state_dir, _fake_upstreams,
         judge_upstream):  # fmt: skip
    gateway = make_gateway(sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / 'retraining-gate-gateway.db'}")
    judge = gateway.put_route(variants=[variant("judge", judge_upstream)])
    env = evaluation_env(
        redis_url=redis_url,
        FEEDBACK_GATEWAY_URL=gateway.url,
        FEEDBACK_GATEWAY_ADMIN_TOKEN=gateway.admin_token,
        FEEDBACK_MLFLOW_TRACKING_URI=mlflow_server.url,
        FEEDBACK_EXPERIMENT_INTERVAL_S="0.3",
        FEEDBACK_EVAL_JUDGE_KEY=gateway.create_key()[1],
    )
    sql_url = new_database()
    service, worker = start_with_worker(
        make_feedback, sql_url=sql_url, state_dir=llmops_state_dir / "retraining-gate-worker", **env
    )
    yield service, gateway, judge, sql_url
    worker.stop()


def _registered(mlflow_server) -> tuple[str, str]:
    """A registered model whose ``challenger`` alias points at a new version: what a training job leaves."""
    client = mlflow_server.client()
    model = f"gated-{uuid.uuid4().hex[:6]}"
    client.create_registered_model(model)
    version = client.create_model_version(model, source="s3://llmops-tests/adapter").version
    client.set_registered_model_alias(model, "challenger", version)
    return model, version


def _job_succeeded(sql_url: str, route: str, *, served: str, version: str) -> None:
    """What the controller records when the trainer reports the job succeeded (training is not under test)."""

    async def write() -> None:
        engine = create_async_engine(sql_url)
        async with engine.begin() as connection:
            job = {"job_id": f"job_{uuid.uuid4().hex[:8]}", "job_state": "succeeded"}
            adapter = {"served_model": served, "registered_version": version}
            await connection.execute(
                update(RetrainingPolicy).where(RetrainingPolicy.route == route).values(**job, **adapter)
            )
        await engine.dispose()

    asyncio.run(write())


def _policy(model: str, adapter: FakeUpstream, gate: dict) -> dict:
    return {"model_name": model, "champion": "base", "upstream": adapter.base_url, "min_examples": 1000,
            "cooldown_s": 0, "experiment": {"steps": [0.1, 0.5]}, "gate": gate}  # fmt: skip


def _weights(gateway, route: str) -> dict[str, float]:
    with gateway.admin() as admin:
        return {v["name"]: v["weight"] for v in admin.get(f"/admin/routes/{route}").json()["variants"]}


def _gate_routes(gateway, route: str) -> list[str]:
    with gateway.admin() as admin:
        return [r["name"] for r in admin.get("/admin/routes").json()["data"] if r["name"].startswith(f"{route}.gate-")]


def test_a_challenger_the_gate_blocks_gets_no_canary_and_the_loop_goes_on(
    loop, upstreams, judge_upstream, mlflow_server, make_record, expect_error
):
    service, gateway, judge, sql_url = loop
    model, version = _registered(mlflow_server)
    adapter = FakeUpstream(f"{model}@challenger").start()  # the inference service serving the new adapter
    try:
        route = gateway.put_route(variants=[variant("base", upstreams["alpha"], model="base-model")])
        asked = [make_record(route=route, variant="base") for _ in range(3)]
        with service.ingest() as ingester:
            assert ingester.post("/v1/requests", json={"records": asked}).status_code == 200
        gate = {"rubric": "pairwise", "judge_route": judge, "replay": 10, "margin": 0.1}
        with service.admin() as admin:
            # Bad gates are refused at the edge, before any job trains.
            for bad in ({"rubric": "nope", "replay": 3}, {"replay": 3, "eval_set": "x"}, {"rubric": "pairwise"},
                        {"replay": 0}, {"replay": 3, "margin": 2}):  # fmt: skip
                expect_error(admin.put(f"/v1/retraining/{route}", json=_policy(model, adapter, bad)), 422)
            bad_experiment = _policy(model, adapter, gate) | {"experiment": {"primary_metric": "judge_score"}}
            expect_error(admin.put(f"/v1/retraining/{route}", json=bad_experiment), 422)
            assert admin.put(f"/v1/retraining/{route}", json=_policy(model, adapter, gate)).status_code == 200

            def state() -> dict:
                return admin.get(f"/v1/retraining/{route}").json()

            wait_for(lambda: "new training examples" in state()["status"], timeout_s=10, what="a pass")
            _job_succeeded(sql_url, route, served=adapter.name, version=version)
            blocked = wait_for(lambda: state()["gate_verdict"] and state(), timeout_s=60, what="the gate's verdict")

            assert blocked["gate_verdict"] == "block" and blocked["experiment_id"] is None
            assert "losses exceed wins by 100.0%" in blocked["gate_reason"]
            comparison = admin.get(f"/v1/evaluations/comparisons/{blocked['gate_comparison_id']}").json()
            assert comparison["spec"]["champion_route"] == f"{route}.gate-champion"
            assert comparison["spec"]["model"] == model and comparison["spec"]["model_version"] == version
            # The route's three logged prompts, each answered by both arms and judged in both orders.
            assert sorted(r["question"] for r in comparison["rows"]) == sorted(
                r["prompt"][-1]["content"] for r in asked
            )
            assert all(r["challenger_answer"].startswith(f"{adapter.name}:") for r in comparison["rows"])
            assert (comparison["wins"], comparison["ties"], comparison["losses"]) == (0, 0, 3)

            client = mlflow_server.client()
            run = client.get_run(blocked["gate_run_id"])
            assert run.data.tags["llmops.verdict"] == "block" and run.data.metrics["loss_rate"] == 1.0
            assert client.get_model_version(model, version).tags["llmops.offline_gate"] == "block"
            assert admin.get("/v1/experiments", params={"route": route}).json()["data"] == []
            assert _weights(gateway, route) == {"base": 1.0, "challenger": 0.0}  # joined the route, no traffic
            assert _gate_routes(gateway, route) == []  # they served the comparison only

            # The next cycle proceeds as usual (waiting for new feedback), the blocked gate kept on the policy.
            after = wait_for(lambda: "new training examples" in state()["status"] and state(), timeout_s=10,
                             what="the next cycle")  # fmt: skip
            assert after["gate_verdict"] == "block" and after["gate_run_id"] == blocked["gate_run_id"]

        from typer.testing import CliRunner

        from llmops_cli.main import app

        env = {"LLMOPS_ADMIN_TOKEN": service.admin_token, "LLMOPS_FEEDBACK_URL": service.url}
        listed = CliRunner().invoke(app, ["retraining", "list"], env=env)
        assert listed.exit_code == 0 and "BLOCK" in listed.output, listed.output  # the "last gate" column
        shown = CliRunner().invoke(app, ["retraining", "show", route], env=env)
        assert shown.exit_code == 0 and orjson.loads(shown.output)["gate_run_id"] == blocked["gate_run_id"]
    finally:
        adapter.stop()


def test_a_challenger_that_passes_the_gate_is_canaried(loop, upstreams, mlflow_server):
    service, gateway, _, sql_url = loop
    model, version = _registered(mlflow_server)
    adapter = FakeUpstream(f"{model}@challenger").start()
    try:
        route = gateway.put_route(variants=[variant("base", upstreams["alpha"], model="base-model")])
        name = f"gate-set-{uuid.uuid4().hex[:6]}"
        # Both arms' answers hold "tok1": every row a tie, which holds within any margin.
        items = [{"question": f"question {i}", "reference": "tok1"} for i in range(3)]
        gate = {"rubric": "contains_reference", "eval_set": name, "margin": 0.0}
        with service.admin() as admin:
            admin.post("/v1/evaluations/sets", json={"name": name, "items": items}).raise_for_status()
            assert admin.put(f"/v1/retraining/{route}", json=_policy(model, adapter, gate)).status_code == 200

            def state() -> dict:
                return admin.get(f"/v1/retraining/{route}").json()

            wait_for(lambda: "new training examples" in state()["status"], timeout_s=10, what="a pass")
            _job_succeeded(sql_url, route, served=adapter.name, version=version)
            opened = wait_for(lambda: state()["experiment_id"] and state(), timeout_s=60, what="the canary")
            assert opened["gate_verdict"] == "pass" and "passed" in opened["status"]
            comparison = admin.get(f"/v1/evaluations/comparisons/{opened['gate_comparison_id']}").json()
            assert comparison["ties"] == 3 and comparison["spec"]["eval_set"].startswith(f"{name}@")
            experiment = admin.get(f"/v1/experiments/{opened['experiment_id']}").json()
            assert experiment["challenger_version"] == version and experiment["share"] == 0.1
        assert _weights(gateway, route) == {"base": 0.9, "challenger": 0.1}
        assert _gate_routes(gateway, route) == []
        assert mlflow_server.client().get_model_version(model, version).tags["llmops.offline_gate"] == "pass"
        assert len(adapter.stats.requests) == 3  # the gate asked the adapter each question once, by its own route
    finally:
        adapter.stop()


def test_the_gate_needs_the_evaluation_queue(make_feedback, new_database, gateway, upstreams):
    """Without FEEDBACK_EVAL_REDIS_URL the gate cannot run: the policy waits and says why, and opens no canary."""
    sql_url = new_database()
    service = make_feedback(sql_url=sql_url, FEEDBACK_GATEWAY_URL=gateway.url,
                            FEEDBACK_GATEWAY_ADMIN_TOKEN=gateway.admin_token, FEEDBACK_EXPERIMENT_INTERVAL_S="0.3")  # fmt: skip
    adapter = FakeUpstream("unregistered@challenger").start()
    try:
        route = gateway.put_route(variants=[variant("base", upstreams["alpha"], model="base-model")])
        gate = {"rubric": "contains_reference", "eval_set": "any", "margin": 0.0}
        with service.admin() as admin:
            assert admin.put(f"/v1/retraining/{route}", json=_policy("m", adapter, gate)).status_code == 200
            wait_for(lambda: "new training examples" in admin.get(f"/v1/retraining/{route}").json()["status"],
                     timeout_s=10, what="a pass")  # fmt: skip
            _job_succeeded(sql_url, route, served=adapter.name, version="1")
            waiting = wait_for(
                lambda: (
                    "evaluation is not configured" in (s := admin.get(f"/v1/retraining/{route}").json())["status"] and s
                ),
                timeout_s=10,
                what="the gate's refusal",
            )
            assert waiting["experiment_id"] is None and waiting["gate_comparison_id"] is None
    finally:
        adapter.stop()
