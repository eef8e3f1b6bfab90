"""PostgreSQL stopped and started again under a running trainer API: while it is down, submitting and listing jobs
answer 503 ``database_unavailable`` with ``Retry-After`` (not a 500) and its reaper logs a line per pass (no
traceback); once it is back the same process takes and lists jobs again, without a restart.

The trainer has no worker (its jobs stay queued). The server is the session's private cluster (``private_postgres``
in the test kit): the shared one is never touched.
"""

import time
import uuid

import httpx
import pytest

from llmops_testkit.trainer import Trainer, chat_jsonl, new_token, trainer_env

JOB = {"dataset": {"jsonl": chat_jsonl([("q", "a"), ("q2", "a2")])}, "training": {"max_steps": 1}}


@pytest.fixture
def trainer_on_private_postgres(private_postgres_url, redis_url, llmops_state_dir):
    state_dir = llmops_state_dir / f"trainer-pg-restart-{uuid.uuid4().hex[:6]}"
    env = trainer_env(
        sql_url=private_postgres_url,
        redis_url=redis_url,
        mlflow_uri="http://127.0.0.1:9",
        state_dir=state_dir,
        admin_token=new_token(),
    )
    service = Trainer(env=env, state_dir=state_dir).start(workers=0)
    yield service
    service.stop()


def test_database_restart_gives_503_then_jobs_are_taken_again(trainer_on_private_postgres, private_postgres):
    trainer = trainer_on_private_postgres
    process = trainer.api.process
    before = trainer.submit(**JOB, registry={"model_name": "before-restart"})
    with trainer.admin() as client:
        down: list[httpx.Response] = []

        def while_down() -> None:
            time.sleep(0.6)  # a reaper pass or two meet the outage
            down.append(client.post("/jobs", json={**JOB, "registry": {"model_name": "during-restart"}}))
            down.append(client.get("/jobs"))

        private_postgres.restart(while_down=while_down)
        for response in down:
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "database_unavailable" and response.headers["retry-after"]

        submitted = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            submitted.append(client.post("/jobs", json={**JOB, "registry": {"model_name": "after-restart"}}))
            if submitted[-1].status_code == 201:
                break
            time.sleep(0.2)
        assert submitted[-1].status_code == 201, [r.text for r in submitted]
        assert all(r.status_code == 503 for r in submitted[:-1]), [r.text for r in submitted]
        listed = client.get("/jobs", params={"limit": 10})
        assert listed.status_code == 200, listed.text
        names = [job["model_name"] for job in listed.json()["data"]]
    assert names[:2] == ["after-restart", "before-restart"], names  # newest first; nothing of the refused one
    assert trainer.job(before["id"])["state"] == "queued"
    assert process.poll() is None and trainer.api.process is process  # the same process throughout
    assert httpx.get(f"{trainer.url}/readyz", timeout=5).status_code == 200
    log = trainer.api.log_path.read_text()
    assert "reaper pass failed: database unreachable" in log and "Traceback" not in log
