"""Retraining from feedback on real parts: ratings with corrections in the feedback service, the policy starting a
real training job (trainer API, Celery worker, PEFT, MLflow registry), the adapter joining the gateway's route
and an experiment opening at the canary share once the adapter is served."""

import time
import uuid

import pytest

from llmops_cli.procs import free_port
from llmops_common.contracts.serving import INFERENCE_TOKEN_ENV
from llmops_testkit.backends import postgres_only
from llmops_testkit.fake_upstream import FakeUpstream
from llmops_testkit.gateway import variant
from llmops_testkit.inference import prepare_bundled_model, wait_for
from llmops_testkit.trainer import Trainer, trainer_env

pytestmark = [
    pytest.mark.timeout(600),  # a real (tiny) training job on a busy 2-core machine
    postgres_only,  # the closed loop end to end: the store is not the subject
]

TINY = {"training": {"max_steps": 2, "max_seq_length": 64, "batch_size": 2, "eval_fraction": 0}}


@pytest.fixture(scope="module")
def loop(make_feedback, new_database, gateway, mlflow_server, redis_url, llmops_state_dir, serving_token):
    """A feedback service with the whole controller (gateway, registry, trainer) and the trainer reading it."""
    prepare_bundled_model()
    trainer_port = free_port()  # each must know the other's address before it starts
    feedback = make_feedback(  # launched: the trainer starts beside it, both seconds of imports
        sql_url=new_database(),
        start=False,
        FEEDBACK_GATEWAY_URL=gateway.url,
        FEEDBACK_GATEWAY_ADMIN_TOKEN=gateway.admin_token,
        FEEDBACK_MLFLOW_TRACKING_URI=mlflow_server.url,
        FEEDBACK_TRAINER_URL=f"http://127.0.0.1:{trainer_port}",
        FEEDBACK_EXPERIMENT_INTERVAL_S="0.3",
        FEEDBACK_INFERENCE_SERVING_TOKEN=serving_token,
    )
    state_dir = llmops_state_dir / f"retraining-{uuid.uuid4().hex[:6]}"
    env = trainer_env(
        sql_url=f"sqlite+aiosqlite:///{state_dir / 'trainer.db'}",
        redis_url=redis_url,
        mlflow_uri=mlflow_server.url,
        state_dir=state_dir,
        admin_token=feedback.admin_token,  # the platform's one admin token
        TRAINER_FEEDBACK_URL=feedback.url,
        TRAINER_FEEDBACK_TOKEN=feedback.admin_token,
    )
    trainer = Trainer(env=env, state_dir=state_dir, port=trainer_port)
    feedback.launch()
    trainer.launch(workers=1)
    feedback.wait()
    trainer.wait_ready()
    yield feedback, gateway, trainer
    trainer.stop()


def _corrected(feedback, route: str, count: int) -> None:
    """``count`` answers on the route, each rated down with a correction (a training example each)."""
    now = time.time()
    records = [
        {
            "request_id": uuid.uuid4().hex,
            "key_id": "key_loop",
            "route": route,
            "variant": "base",
            "status": 200,
            "prompt": [{"role": "user", "content": f"Who keeps lighthouse number {i}?"}],
            "answer": "I do not know.",
            "started_at": now,
            "finished_at": now,
        }
        for i in range(count)
    ]
    with feedback.ingest() as ingest:
        assert ingest.post("/v1/requests", json={"records": records}).status_code == 200
    with feedback.admin() as admin:
        for i, record in enumerate(records):
            rating = {"request_id": record["request_id"], "rating": "down", "correction": f"Odalys keeps number {i}."}
            assert admin.post("/v1/feedback", json=rating).status_code == 201


def test_enough_new_feedback_trains_a_challenger_and_canaries_it(loop, upstreams, expect_error, serving_token):
    feedback, gateway, trainer = loop
    model = f"loop-{uuid.uuid4().hex[:8]}"
    served = f"{model}@challenger"
    adapter_server = FakeUpstream(served).start()  # stands for the inference service serving the new adapter
    adapter_server.behaviour.api_key = serving_token  # closed, as `llmops up` runs it
    try:
        base = variant("base", upstreams["alpha"], model="base-model") | {"api_key_env": INFERENCE_TOKEN_ENV}
        route = gateway.put_route(variants=[base])
        policy = {
            "model_name": model,
            "champion": "base",
            "upstream": adapter_server.base_url,
            "min_examples": 4,
            "cooldown_s": 0,
            "job": TINY,
            "experiment": {"steps": [0.2, 0.5], "min_ratings_per_arm": 1000},
        }
        with feedback.admin() as admin:
            expect_error(admin.put("/v1/retraining/no-such-route", json=policy), 404, "route_not_found")
            expect_error(admin.put(f"/v1/retraining/{route}", json=policy | {"champion": "nope"}), 422)
            expect_error(admin.get("/v1/retraining/nothing-here"), 404, "retraining_not_found")
            assert admin.put(f"/v1/retraining/{route}", json=policy).status_code == 200

            def status() -> dict:
                return admin.get(f"/v1/retraining/{route}").json()

            wait_for(lambda: status()["status"] == "waiting: 0 new training examples of 4", timeout_s=10, what="a pass")
            _corrected(feedback, route, 3)
            wait_for(lambda: "3 new training examples of 4" in status()["status"], timeout_s=10, what="the count")
            # One more reaches the threshold; a second one here could race the controller's pass (it may start the
            # job between the two ratings), so the dataset's size would not be known.
            _corrected(feedback, route, 1)
            started = wait_for(lambda: status()["job_id"], timeout_s=15, what="the job")
            assert status()["dataset_examples"] == 4 and len(status()["dataset_hash"]) == 64

            experiment_id = wait_for(lambda: status()["experiment_id"], timeout_s=400, what="the canary")
            job = trainer.job(started)
            assert job["state"] == "succeeded" and job["served_model"] == served
            experiment = admin.get(f"/v1/experiments/{experiment_id}").json()
            assert experiment["challenger_version"] == job["registered_version"]
            assert experiment["created_by"] == "retraining" and experiment["share"] == 0.2

            with gateway.admin() as gw:
                variants = {v["name"]: v for v in gw.get(f"/admin/routes/{route}").json()["variants"]}
            assert variants["challenger"]["model"] == served and variants["challenger"]["weight"] == 0.2
            # Served beside the champion: the gateway sends it the same key; the canary opened once the feedback
            # service, asking with that key, saw the adapter listed.
            assert variants["challenger"]["api_key_env"] == INFERENCE_TOKEN_ENV

            # While the experiment is open, new feedback waits: one experiment on a route at a time.
            _corrected(feedback, route, 4)
            wait_for(lambda: "is open on the route" in status()["status"], timeout_s=10, what="the guard")
            assert status()["job_id"] == started
    finally:
        adapter_server.stop()
