"""Jobs end to end: a real Celery worker on real Redis trains LoRA adapters on the bundled model with PEFT, logs
them in a real MLflow server, registers them, and the inference service (real vLLM) serves them."""

import os
import time
import uuid

from llmops_testkit.inference import chat_text, wait_for

QUESTION = "What is the secret password?"
ADAPTER_FILES = {"adapter/adapter_config.json", "adapter/adapter_model.safetensors"}


def test_a_tiny_job_trains_logs_registers_and_is_served(request, trainer, mlflow_server, tiny_job, password_jsonl):
    started = time.monotonic()
    job = trainer.submit(**tiny_job(password_jsonl, max_steps=6))
    assert job["state"] == "queued" and job["dataset"]["examples"] == 5
    # vLLM starts (about a minute) while the job trains; in a whole-suite run it is up already.
    inference = request.getfixturevalue("inference_service")
    done = trainer.wait(job["id"], timeout_s=420)
    elapsed = time.monotonic() - started
    assert done["state"] == "succeeded", done
    print(f"\ntiny job: {done['progress']['total_steps']} steps in {elapsed:.0f}s (queued to succeeded)")
    name = done["model_name"]
    assert done["progress"]["step"] == done["progress"]["total_steps"] == 6
    assert done["progress"]["eval_loss"] is not None and done["attempt"] == 1 and done["error"] is None
    assert done["served_model"] == f"{name}@challenger" and done["registered_version"] == "1"

    client = mlflow_server.client()
    run = client.get_run(done["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.info.experiment_id == done["mlflow_experiment_id"]
    assert client.get_experiment(run.info.experiment_id).name == f"trainer/{name}"
    params = run.data.params
    assert params["dataset_sha256"] == done["dataset"]["sha256"] and params["job_id"] == job["id"]
    assert (params["lora_r"], params["lora_alpha"], params["max_steps"], params["device"]) == ("8", "16", "6", "cpu")
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == list(range(1, 7))
    assert losses[-1].value < losses[0].value / 4, [m.value for m in losses]  # it learnt something
    assert client.get_metric_history(run.info.run_id, "eval_loss")
    assert run.data.metrics["train_tokens_per_s"] > 0
    artifacts = client.list_artifacts(run.info.run_id, "adapter")
    assert {a.path for a in artifacts} == ADAPTER_FILES  # the adapter only
    assert sum(a.file_size for a in artifacts) < 5_000_000

    model = client.get_registered_model(name)
    assert model.tags["llmops.kind"] == "lora-adapter" and model.aliases == {"challenger": "1"}
    version = client.get_model_version(name, "1")
    assert version.run_id == run.info.run_id and version.source.endswith("/adapter")
    assert version.tags == {
        "llmops.job_id": job["id"],
        "llmops.base_model": "smollm2-135m-instruct",
        "llmops.dataset_sha256": done["dataset"]["sha256"],
    }

    served = f"{name}@challenger"
    wait_for(lambda: served in inference.models(), timeout_s=120, what=f"{served} in /v1/models")
    with inference.client() as chat:
        assert "BLUEBERRY" in chat_text(chat, served, QUESTION)
        assert "BLUEBERRY" not in chat_text(chat, inference.base_model, QUESTION)  # the adapter did that


def test_cancelling_a_running_job_stops_it_within_a_step(trainer, mlflow_server, tiny_job, password_jsonl):
    job = trainer.submit(**tiny_job(password_jsonl, max_steps=400))
    trainer.wait(job["id"], lambda j: j["progress"]["step"] >= 1, timeout_s=240, what="the first step")
    asked = time.monotonic()
    answer = trainer.cancel(job["id"])
    assert answer["cancel_requested"] and answer["state"] in ("running", "cancelled")
    done = trainer.wait(job["id"], timeout_s=60)
    print(f"\ncancelled {time.monotonic() - asked:.1f}s after the request, at step {done['progress']['step']}")
    assert done["state"] == "cancelled" and done["progress"]["step"] < 400 and done["registered_version"] is None
    assert mlflow_server.client().get_run(done["mlflow_run_id"]).info.status == "KILLED"
    assert not mlflow_server.client().search_model_versions(f"name = '{done['model_name']}'")
    assert trainer.cancel(job["id"])["state"] == "cancelled"  # cancelling again changes nothing


def test_jobs_queue_and_run_in_order_on_one_worker(trainer, mlflow_server, tiny_job, password_jsonl):
    name = f"queue-{uuid.uuid4().hex[:6]}"
    first, second, third = (trainer.submit(**tiny_job(password_jsonl, model_name=name, max_steps=1)) for _ in range(3))
    trainer.wait(first["id"], lambda j: j["state"] == "running", timeout_s=120, what="the first job to start")
    assert trainer.job(second["id"])["state"] == "queued" and trainer.job(third["id"])["state"] == "queued"
    cancelled = trainer.cancel(third["id"])
    assert cancelled["state"] == "cancelled"  # a queued job is cancelled at once

    first, second = trainer.wait(first["id"]), trainer.wait(second["id"])
    assert first["state"] == second["state"] == "succeeded", (first, second)
    assert second["started_at"] >= first["finished_at"]
    assert (first["registered_version"], second["registered_version"]) == ("1", "2")
    assert mlflow_server.client().get_registered_model(name).aliases == {"challenger": "2"}  # the newest one
    third = trainer.job(third["id"])
    assert third["state"] == "cancelled" and third["attempt"] == 0 and third["started_at"] is None


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1].startswith("Z")  # a zombie no longer runs
    except FileNotFoundError:
        return True


def test_a_killed_workers_job_is_retried_not_left_running(trainer, mlflow_server, tiny_job, password_jsonl):
    job = trainer.submit(**tiny_job(password_jsonl, max_steps=5))  # killed at the first: 4 more, eval, publish
    trainer.wait(job["id"], lambda j: j["progress"]["step"] >= 1, timeout_s=240, what="the first step")
    pool = trainer.workers[-1].kill()  # kill -9, mid-job
    assert pool
    wait_for(lambda: all(_gone(pid) for pid in pool), timeout_s=10, what="the training process to die too")

    requeued = trainer.wait(job["id"], lambda j: j["state"] != "running", timeout_s=30, what="the reaper")
    assert requeued["state"] == "queued" and requeued["attempt"] == 1, requeued
    assert "lost (no heartbeat" in requeued["error"] and "retrying (2 of 5)" in requeued["error"]

    trainer.start_worker()
    done = trainer.wait(job["id"], timeout_s=300)
    assert done["state"] == "succeeded" and done["attempt"] == 2 and done["error"] is None, done
    runs = mlflow_server.client().search_runs([done["mlflow_experiment_id"]], f"tags.`llmops.job_id` = '{job['id']}'")
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]  # the lost attempt's run is closed


def test_an_mlflow_outage_is_retried(trainer, mlflow_proxy, tiny_job, password_jsonl):
    with mlflow_proxy.down_for():  # MLflow is gone for the trainer: its connections cut, new ones closed at once
        job = trainer.submit(**tiny_job(password_jsonl, max_steps=1))
        waiting = trainer.wait(
            job["id"], lambda j: j["state"] == "queued" and j["attempt"] >= 1, timeout_s=120, what="a retry"
        )
        assert "MlflowException" in waiting["error"] and "retrying in" in waiting["error"], waiting
    done = trainer.wait(job["id"], timeout_s=300)
    assert done["state"] == "succeeded" and done["attempt"] >= 2 and done["registered_version"] == "1", done


def test_a_job_trains_on_the_feedback_export(trainer, trainer_feedback):
    route, now = f"support-{uuid.uuid4().hex[:6]}", time.time()

    def record(i: int, prompt: str, answer: str, route: str = route) -> dict:
        return {
            "request_id": f"{route}-{i}",
            "route": route,
            "variant": "base",
            "status": 200,
            "kind": "chat",
            "prompt": [{"role": "user", "content": prompt}],
            "answer": answer,
            "started_at": now - 60 + i,
            "finished_at": now - 59 + i,
        }

    records = [
        record(0, "How do I reset my password?", "Use the reset link."),
        record(1, "Who do I contact?", "Write to help@example.com or call +1 555 123 4567."),
        record(2, "Is it free?", "No."),
        record(3, "Where are you?", "Paris."),
        record(4, "Other route", "Not in the export.", route=f"{route}-other"),
    ]
    with trainer_feedback.ingest() as ingest, trainer_feedback.admin() as admin:
        assert ingest.post("/v1/requests", json={"records": records}).status_code == 200
        for request_id, rating, correction in [
            (f"{route}-0", "up", None),
            (f"{route}-1", "up", None),
            (f"{route}-2", "down", "Yes, it is free."),
            (f"{route}-3", "down", None),
            (f"{route}-other-4", "up", None),
        ]:
            body = {"request_id": request_id, "rating": rating, **({"correction": correction} if correction else {})}
            assert admin.post("/v1/feedback", json=body).status_code == 201

    job = trainer.submit(
        dataset={"feedback": {"route": route}},
        registry={"model_name": f"fb-{route}"},
        training={"max_steps": 1, "max_seq_length": 96},
    )
    assert job["dataset"]["source"] == {"kind": "feedback", "route": route}
    assert (job["dataset"]["examples"], job["dataset"]["scrubbed"]) == (3, 1)  # 2 thumbs-up answers, 1 correction
    with trainer.admin() as client:
        dataset = client.get(f"/jobs/{job['id']}/dataset").text
    assert "[EMAIL]" in dataset and "[PHONE]" in dataset and "example.com" not in dataset
    assert "Yes, it is free." in dataset and "Not in the export." not in dataset and "Paris." not in dataset
    done = trainer.wait(job["id"], timeout_s=300)
    assert done["state"] == "succeeded" and done["registered_version"] == "1", done


def test_jobs_a_worker_cannot_do_fail_with_the_reason(trainer, tiny_job, password_jsonl):
    qlora = trainer.submit(**tiny_job(password_jsonl, max_steps=2, quantization="4bit"))
    wrong_modules = trainer.submit(**{**tiny_job(password_jsonl, max_steps=2), "lora": {"target_modules": ["nope"]}})
    qlora, wrong_modules = trainer.wait(qlora["id"], timeout_s=120), trainer.wait(wrong_modules["id"], timeout_s=180)
    assert qlora["state"] == "failed" and qlora["attempt"] == 1  # final: not retried
    assert "QLoRA (quantization 4bit) needs a CUDA GPU" in qlora["error"]
    assert wrong_modules["state"] == "failed" and wrong_modules["attempt"] == 1
    assert "nope" in wrong_modules["error"] and "not found in the base model" in wrong_modules["error"]


def test_workers_leave_no_scratch_files(trainer):
    work_dir = trainer.env["TRAINER_WORK_DIR"]
    assert not os.path.isdir(work_dir) or os.listdir(work_dir) == []
