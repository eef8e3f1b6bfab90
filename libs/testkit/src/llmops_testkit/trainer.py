"""The trainer under test: its job API and its Celery workers as real processes, and a client for the job API."""

import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from llmops_cli.procs import free_port, log_tail, spawn
from llmops_testkit.processes import CeleryWorkerProcess, ServiceProcess, stop_together

FINISHED = ("succeeded", "failed", "cancelled")


def trainer_env(
    *, sql_url: str, redis_url: str, mlflow_uri: str, state_dir: Path, admin_token: str, **overrides: str
) -> dict[str, str]:
    """Production-like settings (no dev mode), with a private Redis key prefix, and lifecycle timings short enough
    for tests to see heartbeats go stale and jobs retried within seconds."""
    env = {
        "TRAINER_ADMIN_TOKEN": admin_token,
        "TRAINER_DEV_MODE": "false",
        "TRAINER_DATABASE_URL": sql_url,
        "TRAINER_REDIS_URL": redis_url,
        # Jobs of this trainer never reach another test session's workers, nor theirs ours.
        "TRAINER_REDIS_KEY_PREFIX": f"test:{uuid.uuid4().hex[:8]}:trainer:",
        "TRAINER_MLFLOW_TRACKING_URI": mlflow_uri,
        "TRAINER_WORK_DIR": str(state_dir / "work"),
        "TRAINER_HEARTBEAT_INTERVAL_S": "0.5",
        "TRAINER_HEARTBEAT_TIMEOUT_S": "6",
        "TRAINER_REAPER_INTERVAL_S": "0.5",
        "TRAINER_RETRY_BACKOFF_S": "3",
        "TRAINER_MAX_ATTEMPTS": "5",
        "TRAINER_MLFLOW_MAX_RETRIES": "0",
        # The suite runs vLLM, MLflow and the services on the same few cores: one training thread does not thrash.
        "TRAINER_TORCH_THREADS": "1",
        "TRAINER_LOG_LEVEL": "INFO",
    }
    env.update(overrides)
    return env


class TrainerWorker(CeleryWorkerProcess):
    """``python -m llmops_trainer.worker``: a Celery worker (prefork, one slot) with its health port."""

    what = "trainer worker"

    def __init__(self, *, env: dict[str, str], state_dir: Path, name: str) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "TRAINER_WORKER_PORT": str(self.port)}
        self.log_path = Path(state_dir) / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout_s: float = 120.0) -> "TrainerWorker":
        self.launch()
        return self.wait(timeout_s=timeout_s)

    def launch(self) -> None:
        """Starts the process without waiting for it. From the main thread: the process dies with the thread that
        started it (the parent-death signal follows the thread), so a helper thread may only ``wait``."""
        self.process = spawn(
            [sys.executable, "-m", "llmops_trainer.worker"], log_path=self.log_path, env=self.env, die_with_parent=True
        )


class Trainer:
    def __init__(self, *, env: dict[str, str], state_dir: Path, port: int | None = None) -> None:
        """``port``: where the API will listen (a free one by default), for services that must know it first."""
        self.env, self.state_dir = env, Path(state_dir)
        self.admin_token = env["TRAINER_ADMIN_TOKEN"]
        self.api = ServiceProcess(
            "llmops_trainer.app:create_app", env=env, port=port, log_dir=state_dir, name="trainer-api"
        )
        self.workers: list[TrainerWorker] = []

    @property
    def url(self) -> str:
        return self.api.url

    def start(self, *, workers: int = 1) -> "Trainer":
        self.api.start(timeout_s=60)
        for _ in range(workers):
            self.start_worker()
        return self

    def launch(self, *, workers: int = 1) -> None:
        """Starts the API and ``workers`` without waiting (see ``TrainerWorker.launch``); then ``wait_ready``."""
        self.api.launch()
        for _ in range(workers):
            worker = TrainerWorker(env=self.env, state_dir=self.state_dir, name=f"trainer-worker-{len(self.workers)}")
            worker.launch()
            self.workers.append(worker)

    def wait_ready(self, *, timeout_s: float = 180.0) -> "Trainer":
        self.api.wait(timeout_s=timeout_s)
        for worker in self.workers:
            worker.wait(timeout_s=timeout_s)
        return self

    def start_worker(self) -> TrainerWorker:
        worker = TrainerWorker(env=self.env, state_dir=self.state_dir, name=f"trainer-worker-{len(self.workers)}")
        self.workers.append(worker.start())
        return worker

    def stop(self) -> None:
        stop_together(*self.workers, self.api)  # a worker that loaded torch takes seconds to exit
        self._forget_redis_keys()

    def _forget_redis_keys(self) -> None:
        """The session's queues, bindings and task results: nothing of it is useful to a later session."""
        import redis

        client = redis.Redis.from_url(self.env["TRAINER_REDIS_URL"])
        try:
            keys = list(client.scan_iter(match=f"{self.env['TRAINER_REDIS_KEY_PREFIX']}*", count=500))
            if keys:
                client.delete(*keys)
        except redis.RedisError:
            pass  # Redis already gone (a private one stopped first): nothing left to clean
        finally:
            client.close()

    def logs(self) -> str:
        paths = [self.api.log_path, *(w.log_path for w in self.workers)]
        return "\n".join(f"--- {p.name}\n{log_tail(p, 60)}" for p in paths)

    # --- the job API ---

    def admin(self, **kwargs) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"authorization": f"Bearer {self.admin_token}"}, timeout=60, **kwargs
        )

    def submit(self, **job) -> dict:
        with self.admin() as client:
            response = client.post("/jobs", json=job)
        assert response.status_code == 201, response.text
        return response.json()

    def job(self, job_id: str) -> dict:
        with self.admin() as client:
            return client.get(f"/jobs/{job_id}").raise_for_status().json()

    def cancel(self, job_id: str) -> dict:
        with self.admin() as client:
            return client.delete(f"/jobs/{job_id}").raise_for_status().json()

    def wait(
        self,
        job_id: str,
        predicate=lambda job: job["state"] in FINISHED,
        *,
        timeout_s: float = 300.0,
        what: str = "the job to finish",
    ) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if predicate(job):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}: {job}\n{self.logs()}")
            time.sleep(0.25)


def chat_jsonl(pairs: list[tuple[str, str]]) -> str:
    """Chat-format JSONL, one user/assistant exchange per line."""
    import json

    return "".join(
        json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n"
        for q, a in pairs
    )


def new_token() -> str:
    return secrets.token_urlsafe(24)
