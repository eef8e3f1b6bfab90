"""The console's training page against a real trainer job API and a real MLflow server: jobs with their state and a
cancel button (CSRF-protected), the registry's models with their aliases; a gateway without them says so."""

import uuid

import httpx
import pytest

from llmops_testkit.console import console_client, post_form, sign_in
from llmops_testkit.trainer import Trainer, chat_jsonl, new_token, trainer_env


@pytest.fixture(scope="module")
def trainer(llmops_state_dir, redis_url, mlflow_server):
    """The job API without workers: a submitted job stays queued until cancelled, which is all this page needs."""
    state_dir = llmops_state_dir / f"console-trainer-{uuid.uuid4().hex[:6]}"
    env = trainer_env(
        sql_url=f"sqlite+aiosqlite:///{state_dir / 'trainer.db'}",
        redis_url=redis_url,
        mlflow_uri=mlflow_server.url,
        state_dir=state_dir,
        admin_token=new_token(),
    )
    service = Trainer(env=env, state_dir=state_dir).start(workers=0)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def gateway(make_gateway, llmops_state_dir, trainer, mlflow_server):
    return make_gateway(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'console-training-{uuid.uuid4().hex[:6]}.db'}",
        GATEWAY_TRAINER_URL=trainer.url,
        GATEWAY_TRAINER_ADMIN_TOKEN=trainer.admin_token,
        GATEWAY_MLFLOW_URL=mlflow_server.url,
    )


def register(mlflow_url: str, name: str, alias: str) -> None:
    with httpx.Client(base_url=f"{mlflow_url}/api/2.0/mlflow", timeout=30) as mlflow:
        mlflow.post("/registered-models/create", json={"name": name}).raise_for_status()
        # A version's source must be a run's artifacts (MLflow refuses arbitrary local paths).
        run = mlflow.post("/runs/create", json={"experiment_id": "0"}).raise_for_status().json()["run"]["info"]
        source = {"name": name, "source": f"{run['artifact_uri']}/adapter", "run_id": run["run_id"]}
        version = mlflow.post("/model-versions/create", json=source)
        number = version.raise_for_status().json()["model_version"]["version"]
        alias_set = mlflow.post("/registered-models/alias", json={"name": name, "alias": alias, "version": number})
        alias_set.raise_for_status()


def test_jobs_and_registry(gateway, trainer, mlflow_server):
    model = f"console-{uuid.uuid4().hex[:6]}"
    register(mlflow_server.url, model, "champion")
    job = trainer.submit(
        dataset={"jsonl": chat_jsonl([("Hi?", "Hello."), ("Bye?", "Goodbye.")])},
        registry={"model_name": f"{model}-next", "alias": "challenger"},
    )
    with console_client(gateway.url) as client:
        sign_in(client, gateway.admin_token)
        page = client.get("/console/training")
        assert page.status_code == 200
        assert f"{model}-next" in page.text and "queued" in page.text
        assert f'action="/console/training/jobs/{job["id"]}/cancel"' in page.text
        assert 'http-equiv="refresh"' in page.text  # a queued job: the page keeps itself current
        assert "@champion → v1" in page.text and f"{model}@champion" in page.text

        forged = client.post(f"/console/training/jobs/{job['id']}/cancel", data={})
        assert forged.status_code == 403 and trainer.job(job["id"])["state"] == "queued"
        cancelled = post_form(client, "/console/training", f"/console/training/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 303
        assert trainer.job(job["id"])["state"] == "cancelled"
        assert "cancelled" in client.get("/console/training").text

        unknown = post_form(client, "/console/training", "/console/training/jobs/no-such-job/cancel")
        assert unknown.status_code == 404 and "trainer" in unknown.text  # the trainer's own answer, in words


def test_without_trainer_or_registry_the_page_says_so(make_gateway, llmops_state_dir):
    gateway = make_gateway(sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'bare-{uuid.uuid4().hex[:6]}.db'}")
    with console_client(gateway.url) as client:
        sign_in(client, gateway.admin_token)
        page = client.get("/console/training")
    assert page.status_code == 200
    assert "Trainer: not configured on this gateway" in page.text
    assert "MLflow: not configured on this gateway" in page.text
