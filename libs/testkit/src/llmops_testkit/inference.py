"""The inference service under test: a real process supervising a real vLLM, and a client for its admin API."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from llmops_cli.procs import free_port, log_tail, spawn
from llmops_testkit.processes import wait_ready


def inference_env(*, state_dir: Path, admin_token: str, mlflow_uri: str | None = None, **overrides: str) -> dict:
    """Production-like settings (no dev mode), syncing adapters every second and checking vLLM's health twice a
    second, so tests see changes (and a started vLLM) quickly.

    Unless ``overrides`` give ``INFERENCE_SERVING_TOKEN``, the OpenAI surface is open on purpose
    (``INFERENCE_OPEN_SERVING``): these tests are about serving and adapters, and their gateways and clients reach it
    without the token. The closed surface is tested in services/inference/tests/test_auth_matrix.py, and end to end
    through ``llmops up`` (tests/test_demo.py)."""
    env = {
        "INFERENCE_ADMIN_TOKEN": admin_token,
        "INFERENCE_DEV_MODE": "false",
        "INFERENCE_STATE_DIR": str(state_dir),
        "INFERENCE_VLLM_PORT": str(free_port()),
        "INFERENCE_SYNC_INTERVAL_S": "1",
        "INFERENCE_RESTART_BACKOFF_S": "0.5",
        "INFERENCE_HEALTH_INTERVAL_S": "0.5",
        "INFERENCE_LOG_LEVEL": "INFO",
    }
    if not overrides.get("INFERENCE_SERVING_TOKEN"):
        env["INFERENCE_OPEN_SERVING"] = "true"
    if mlflow_uri:
        env["INFERENCE_MLFLOW_TRACKING_URI"] = mlflow_uri
    env.update(overrides)
    return env


# What the fake vLLM's OpenAI server module runs: ``fake_upstream`` on the port and under the model name the service
# gives it, until the service stops it (SIGTERM to its process group).
_FAKE_API_SERVER = """
import argparse, signal
from llmops_testkit.fake_upstream import FakeUpstream

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--served-model-name", default="fake-model")
args, _ = parser.parse_known_args()
upstream = FakeUpstream(args.served_model_name)
upstream.port = args.port
stop = {signal.SIGINT, signal.SIGTERM}
signal.pthread_sigmask(signal.SIG_BLOCK, stop)
upstream.start()
signal.sigwait(stop)
upstream.stop()
"""


def fake_vllm_env(directory: Path) -> dict[str, str]:
    """Settings under which the inference service supervises a fake OpenAI server where it would start vLLM, for
    tests about the service itself (its tokens, its relay, its logs), not about inference: a ``vllm`` package whose
    OpenAI server module runs ``fake_upstream``, first on the service's PYTHONPATH (vLLM's process inherits it).
    Starts in a second, where vLLM takes a minute."""
    server = Path(directory) / "vllm" / "entrypoints" / "openai"
    server.mkdir(parents=True, exist_ok=True)
    for package in (server, server.parent, server.parent.parent):
        (package / "__init__.py").touch()
    (server / "api_server.py").write_text(_FAKE_API_SERVER)
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")])),
        "INFERENCE_MODEL": "fake-model",  # not the bundled model: nothing to prepare
        "INFERENCE_ENABLE_LORA": "false",
        "INFERENCE_HEALTH_INTERVAL_S": "0.2",
    }


def prepare_bundled_model() -> None:
    """Converts the bundled model once per machine (a checksum check afterwards), outside any timed start."""
    subprocess.run([sys.executable, "-m", "llmops_models.prepare"], check=True, stdout=subprocess.DEVNULL)


class InferenceService:
    def __init__(self, *, env: dict[str, str], state_dir: Path, port: int | None = None) -> None:
        self.env = {**os.environ, **env}
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.admin_token = env["INFERENCE_ADMIN_TOKEN"]
        self.log_path = self.state_dir / "inference.log"
        self.process: subprocess.Popen | None = None
        self.start_s: float | None = None  # how long the last start took to be ready
        self._launched_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def vllm_url(self) -> str:
        return f"http://127.0.0.1:{self.env['INFERENCE_VLLM_PORT']}"

    def start(self, *, timeout_s: float = 600.0) -> "InferenceService":
        self.launch()
        return self.wait(timeout_s=timeout_s)

    def launch(self) -> None:
        """Starts the service (and so its vLLM) without waiting; ``wait`` for it (``processes.start_together``)."""
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "llmops_inference.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        self._launched_at = time.monotonic()
        self.process = spawn(argv, log_path=self.log_path, env=self.env, die_with_parent=True)

    def wait(self, *, timeout_s: float = 600.0) -> "InferenceService":
        try:
            wait_ready(f"{self.url}/readyz", timeout_s=timeout_s, process=self.process)
        except Exception as exc:
            self.stop()
            raise RuntimeError(
                f"inference did not start: {log_tail(self.log_path, 40)}\nvLLM: "
                f"{log_tail(self.state_dir / 'vllm.log', 40)}"
            ) from exc
        self.start_s = time.monotonic() - self._launched_at
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM: the service stops vLLM itself (its whole process group) before exiting."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # vLLM dies with it (parent-death signal)
            self.process.wait(5)

    # --- clients ---

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)

    def admin(self) -> httpx.Client:
        return self.client(headers={"authorization": f"Bearer {self.admin_token}"})

    def engine(self) -> dict:
        with self.admin() as admin:
            return admin.get("/admin/engine").raise_for_status().json()

    def adapters(self) -> dict:
        with self.admin() as admin:
            return admin.get("/admin/adapters").raise_for_status().json()

    def readiness(self) -> tuple[int, dict]:
        response = httpx.get(f"{self.url}/readyz", timeout=10)
        return response.status_code, response.json()

    def models(self) -> list[str]:
        with self.client() as client:
            return [m["id"] for m in client.get("/v1/models").raise_for_status().json()["data"]]

    @property
    def base_model(self) -> str:
        return self.engine()["served_model_name"]


def wait_for(predicate: Callable[[], object], *, timeout_s: float, interval_s: float = 0.25, what: str = "it"):
    """Polls until ``predicate`` returns something truthy (returned); fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def chat_text(client: httpx.Client, model: str, content: str, **extra) -> str:
    """One greedy chat turn; the answer's text (fails the test on any other status than 200)."""
    body = {"model": model, "messages": [{"role": "user", "content": content}], "temperature": 0, "max_tokens": 24}
    response = client.post("/v1/chat/completions", json={**body, **extra})
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]
