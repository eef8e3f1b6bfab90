"""``llmops train`` against the real trainer: submit a file, follow it to the registered adapter; errors are one line."""

import os
import subprocess
import sys
import uuid


def llmops(*args: str, trainer, timeout_s: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMOPS_TRAINER_URL": trainer.url, "LLMOPS_ADMIN_TOKEN": trainer.admin_token, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "llmops_cli.main", "train", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_train_submits_follows_and_prints_the_served_name(trainer, password_jsonl, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text(password_jsonl + password_jsonl.splitlines(keepends=True)[0])  # one duplicate line
    name = f"cli-{uuid.uuid4().hex[:6]}"
    result = llmops(
        "--dataset",
        str(data),
        "--model-name",
        name,
        "--alias",
        "canary",
        "--max-steps",
        "1",
        "--max-seq-length",
        "96",
        "--rank",
        "4",
        trainer=trainer,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{name}@canary"
    assert "5 examples" in result.stderr and "1 duplicates dropped" in result.stderr
    assert "succeeded" in result.stderr and f"{name} version 1" in result.stderr
    with trainer.admin() as client:
        job = client.get("/jobs", params={"limit": 20}).json()["data"]
    job = next(j for j in job if j["model_name"] == name)
    assert job["hyperparameters"]["lora"]["r"] == 4 and job["hyperparameters"]["training"]["max_steps"] == 1

    finished = llmops("--cancel", job["id"], trainer=trainer)
    assert finished.returncode == 1 and "409" in finished.stderr and "already succeeded" in finished.stderr


def test_train_reports_a_bad_line_without_a_traceback(trainer, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
        '{"messages": [{"role": "user", "content": "hi"}]}\n'
    )
    result = llmops("--dataset", str(data), "--model-name", "never", trainer=trainer)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "422" in result.stderr and "line 2: the last message must be the assistant" in result.stderr
    missing = llmops("--dataset", str(tmp_path / "nope.jsonl"), "--model-name", "never", trainer=trainer)
    assert missing.returncode == 2 and "is not a file" in missing.stderr
