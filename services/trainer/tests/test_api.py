"""The job API at its edge: authentication, validation (422 naming the dataset line), OpenAI-format errors, and the
job lifecycle on PostgreSQL (a trainer with no worker: its jobs stay queued until cancelled)."""

import json
import uuid

import httpx
import pytest

from llmops_common.settings import InsecureSettingsError
from llmops_testkit.trainer import Trainer, chat_jsonl, new_token, trainer_env
from llmops_trainer.app import create_app
from llmops_trainer.settings import DEV_ADMIN_TOKEN, TrainerSettings


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert set(body) >= {"message", "type", "code"}
    return body


@pytest.mark.parametrize("token", [None, DEV_ADMIN_TOKEN, "short"])
def test_no_default_or_weak_admin_token_outside_dev_mode(token):
    with pytest.raises(InsecureSettingsError):
        create_app(TrainerSettings(admin_token=token, dev_mode=False))


def test_every_route_needs_the_admin_token(trainer):
    with httpx.Client(base_url=trainer.url) as anonymous:
        for method, path in [("GET", "/jobs"), ("POST", "/jobs"), ("GET", "/jobs/x"), ("DELETE", "/jobs/x")]:
            error = _error(anonymous.request(method, path), 401)
            assert error["type"] == "authentication_error"
        wrong = anonymous.get("/jobs", headers={"authorization": "Bearer not-the-token-at-all"})
        assert _error(wrong, 401)["code"] == "invalid_token"


def test_a_bad_dataset_line_gives_422_naming_it(trainer, password_jsonl):
    bad = password_jsonl + '{"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]}\n'
    with trainer.admin() as client:
        response = client.post("/jobs", json={"dataset": {"jsonl": bad}, "registry": {"model_name": "never"}})
        error = _error(response, 422)
        assert error["code"] == "invalid_dataset"
        assert "line 6: messages[1].role must be one of system, user, assistant" in error["message"]

        truncated = password_jsonl + '{"messages": [{"role": "user"\n'
        error = _error(
            client.post("/jobs", json={"dataset": {"jsonl": truncated}, "registry": {"model_name": "never"}}), 422
        )
        assert "line 6: invalid JSON" in error["message"]
        names = [job["model_name"] for job in client.get("/jobs", params={"limit": 100}).json()["data"]]
        assert "never" not in names  # nothing was queued


def test_a_bad_uploaded_file_gives_422_naming_the_line(trainer, password_jsonl):
    spec = json.dumps({"registry": {"model_name": "never"}})
    with trainer.admin() as client:
        response = client.post(
            "/jobs/upload",
            data={"spec": spec},
            files={"file": ("data.jsonl", (password_jsonl + "not json\n").encode())},
        )
        assert "line 6: invalid JSON" in _error(response, 422)["message"]
        response = client.post(
            "/jobs/upload", data={"spec": '{"registry": {}}'}, files={"file": ("data.jsonl", password_jsonl.encode())}
        )
        assert "registry.model_name" in _error(response, 422)["message"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"training": {"epochs": 1, "max_steps": 5}}, "epochs or max_steps, not both"),
        ({"registry": {"model_name": "bad@name"}}, "registry.model_name"),
        ({"registry": {"model_name": "ok", "alias": "latest"}}, "reserved"),
        ({"lora": {"r": 0}}, "lora.r"),
        ({"lora": {"target_modules": ["q_proj; rm -rf"]}}, "not a module name"),
        ({"dataset": {"jsonl": "x", "feedback": {}}}, "exactly one dataset source"),
        ({"base_model": "gpt-17"}, "unknown base model 'gpt-17'"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_invalid_jobs_are_refused_at_the_edge(trainer, password_jsonl, change, expected):
    job = {"dataset": {"jsonl": password_jsonl}, "registry": {"model_name": "never"}, **change}
    with trainer.admin() as client:
        error = _error(client.post("/jobs", json=job), 422)
    assert expected in error["message"], error


def test_unknown_job_is_404(trainer):
    with trainer.admin() as client:
        assert _error(client.get("/jobs/ftjob-nope"), 404)["code"] == "job_not_found"
        assert _error(client.delete("/jobs/ftjob-nope"), 404)["code"] == "job_not_found"


def test_health_and_metrics(trainer):
    ready = httpx.get(f"{trainer.url}/readyz").json()
    assert ready["status"] == "ready" and ready["checks"] == {"database": "ok", "broker": "ok"}
    metrics = httpx.get(f"{trainer.url}/metrics").text
    assert 'llmops_trainer_jobs{state="queued"}' in metrics and "llmops_trainer_datasets_rejected_total" in metrics
    assert 'llmops_trainer_job_duration_seconds_count{state="failed"}' in metrics  # read from the table at start
    worker = trainer.workers[-1]
    assert httpx.get(f"http://127.0.0.1:{worker.port}/readyz").json()["status"] == "ready"
    assert "llmops_trainer_worker_ready 1.0" in httpx.get(f"http://127.0.0.1:{worker.port}/metrics").text


@pytest.fixture(scope="module")
def idle_trainer_on_postgres(postgres_database_url, redis_url, llmops_state_dir):
    """A trainer API on PostgreSQL with no worker and no feedback token."""
    state_dir = llmops_state_dir / f"trainer-pg-{uuid.uuid4().hex[:6]}"
    env = trainer_env(
        sql_url=postgres_database_url,
        redis_url=redis_url,
        mlflow_uri="http://127.0.0.1:9",
        state_dir=state_dir,
        admin_token=new_token(),
    )
    service = Trainer(env=env, state_dir=state_dir).start(workers=0)
    yield service
    service.stop()


def test_queued_jobs_on_postgres_list_newest_first_and_cancel_at_once(idle_trainer_on_postgres):
    trainer = idle_trainer_on_postgres
    jsonl = chat_jsonl([("q", "a"), ("q2", "a2")])
    first = trainer.submit(dataset={"jsonl": jsonl}, registry={"model_name": "pg-bot"}, training={"max_steps": 3})
    second = trainer.submit(
        dataset={"jsonl": jsonl},
        registry={"model_name": "pg-bot", "alias": None},
        lora={"r": 4, "target_modules": ["q_proj", "k_proj", "v_proj"]},
    )
    assert first["state"] == "queued" and first["dataset"]["sha256"] == second["dataset"]["sha256"]
    assert first["hyperparameters"]["lora"] == {
        "r": 8,
        "alpha": 16,
        "dropout": 0.05,
        "target_modules": ["q_proj", "v_proj"],
    }
    assert second["hyperparameters"]["training"]["epochs"] == 1.0 and second["alias"] is None
    with trainer.admin() as client:
        listed = client.get("/jobs").json()["data"]
        assert [job["id"] for job in listed[:2]] == [second["id"], first["id"]]
        assert client.get("/jobs", params={"state": "cancelled"}).json()["data"] == []
        cancelled = client.delete(f"/jobs/{first['id']}").json()
        assert cancelled["state"] == "cancelled" and cancelled["finished_at"] is not None
        assert client.delete(f"/jobs/{first['id']}").json()["state"] == "cancelled"  # idempotent
        assert [job["id"] for job in client.get("/jobs", params={"state": "cancelled"}).json()["data"]] == [first["id"]]
        dataset = client.get(f"/jobs/{second['id']}/dataset")
        assert (
            dataset.text == '{"messages":[{"content":"q","role":"user"},{"content":"a","role":"assistant"}]}\n'
            '{"messages":[{"content":"q2","role":"user"},{"content":"a2","role":"assistant"}]}\n'
        )


def test_jobs_survive_an_api_restart(idle_trainer_on_postgres):
    trainer = idle_trainer_on_postgres
    job = trainer.submit(dataset={"jsonl": chat_jsonl([("q", "a")])}, registry={"model_name": "pg-bot"})
    trainer.api.stop()
    trainer.api.start(timeout_s=60)
    assert trainer.job(job["id"]) == job


def test_feedback_source_without_a_token_is_refused_clearly(idle_trainer_on_postgres):
    with idle_trainer_on_postgres.admin() as client:
        response = client.post(
            "/jobs", json={"dataset": {"feedback": {"route": "r"}}, "registry": {"model_name": "fb"}}
        )
    assert _error(response, 400)["code"] == "feedback_not_configured"
