"""A feedback service under test: a real process and an admin client; its evaluation workers."""

import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import orjson

from llmops_cli.procs import free_port, log_tail, spawn, stop_processes
from llmops_testkit.processes import ServiceProcess, start_together, wait_ready


def feedback_env(*, sql_url: str, admin_token: str, ingest_token: str) -> dict[str, str]:
    return {
        "FEEDBACK_ADMIN_TOKEN": admin_token,
        "FEEDBACK_INGEST_TOKEN": ingest_token,
        "FEEDBACK_DEV_MODE": "false",
        "FEEDBACK_DATABASE_URL": sql_url,
        "FEEDBACK_QUALITY_REFRESH_S": "0.2",
    }


class Feedback:
    def __init__(self, *, env: dict[str, str], state_dir: Path) -> None:
        self.env = env
        self.admin_token = env["FEEDBACK_ADMIN_TOKEN"]
        self.ingest_token = env["FEEDBACK_INGEST_TOKEN"]
        self.process = ServiceProcess("llmops_feedback.app:create_app", env=env, log_dir=state_dir, name="feedback")

    @property
    def url(self) -> str:
        return self.process.url

    def start(self) -> "Feedback":
        self.launch()
        self.wait()
        return self

    def launch(self) -> None:
        """Starts the service without waiting; ``wait`` for it (see ``processes.start_together``)."""
        self.process.launch()

    def wait(self, *, timeout_s: float = 60.0) -> None:
        """Until it is ready; the time allows for other services starting beside it."""
        self.process.wait(timeout_s=timeout_s)

    def stop(self) -> None:
        self.process.stop()

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {self.admin_token}"}, timeout=10)

    def ingest(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {self.ingest_token}"}, timeout=10)

    def gateway_env(self) -> dict[str, str]:
        """What a gateway needs to send its request log and ratings here."""
        return {
            "GATEWAY_REQUEST_LOG_SINK": "feedback",
            "GATEWAY_FEEDBACK_URL": self.url,
            "GATEWAY_FEEDBACK_TOKEN": self.ingest_token,
        }


def new_tokens() -> tuple[str, str]:
    return secrets.token_urlsafe(24), secrets.token_urlsafe(24)


class EvaluationWorker:
    """``python -m llmops_feedback.evaluation.worker`` on the feedback service's settings, with its health port."""

    def __init__(self, *, env: dict[str, str], state_dir: Path, name: str = "evaluation-worker") -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "FEEDBACK_EVAL_WORKER_PORT": str(self.port)}
        self.log_path = Path(state_dir) / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout_s: float = 60.0) -> "EvaluationWorker":
        return self.launch().wait(timeout_s=timeout_s)

    def launch(self) -> "EvaluationWorker":
        """Starts the process without waiting for it (then ``wait``): from the main thread, as ``spawn`` needs."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = spawn(
            [sys.executable, "-m", "llmops_feedback.evaluation.worker"], log_path=self.log_path, env=self.env,
            die_with_parent=True,
        )  # fmt: skip
        return self

    def wait(self, *, timeout_s: float = 60.0) -> "EvaluationWorker":
        try:
            wait_ready(f"http://127.0.0.1:{self.port}/readyz", timeout_s=timeout_s, process=self.process)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"evaluation worker did not start: {log_tail(self.log_path, 40)}") from exc
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_processes([self.process], timeout_s=10)


def start_with_worker(make_feedback, *, sql_url: str, state_dir: Path, **overrides: str):
    """A feedback service and an evaluation worker on its settings, started side by side (``processes.start_together``):
    each spends seconds importing, and a serial test run leaves the second core idle meanwhile. Returns (service,
    worker); the worker is the caller's to stop, the service ``make_feedback``'s."""
    service = make_feedback(sql_url=sql_url, start=False, **overrides)
    worker = EvaluationWorker(env=service.env, state_dir=state_dir)
    try:
        start_together(service, worker)
    except Exception:
        worker.stop()
        raise
    return service, worker


def evaluation_env(*, redis_url: str, **overrides: str) -> dict[str, str]:
    """The evaluation settings a feedback service and its workers share, on a Redis key prefix of their own."""
    return {
        "FEEDBACK_EVAL_REDIS_URL": redis_url,
        "FEEDBACK_EVAL_REDIS_KEY_PREFIX": f"test:{uuid.uuid4().hex[:8]}:eval:",
        "FEEDBACK_EVAL_QUEUE": f"eval-{uuid.uuid4().hex[:8]}",
        **overrides,
    }


def pairwise_verdict(payload: dict, *, better: str, position_bias: str | None = None) -> str:
    """A scripted pairwise judge's answer to a request ``payload``: the answer starting with ``better`` wins, in
    either position; on a question containing ``position_bias`` it picks answer A whatever A says."""
    prompt = payload["messages"][-1]["content"]
    answer_a = prompt.split("Answer A:\n", 1)[1].split("\n\nAnswer B:\n", 1)[0]
    biased = position_bias is not None and position_bias in prompt
    winner = "A" if biased or answer_a.startswith(better) else "B"
    return orjson.dumps({"winner": winner, "rationale": "scripted"}).decode()
