"""The demo's view of the platform: the services' admin APIs with the platform's admin token, and a user's key.

``ensure_running`` starts the platform (``llmops up`` in a child process) when none answers, and stops it after.
"""

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

from llmops_cli.client import admin_token
from llmops_cli.services import service_url

READY_LINE = "LLMOps platform ready"


def running() -> bool:
    try:
        return httpx.get(f"{service_url('gateway')}/healthz", timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def ensure_running(*, log, timeout_s: float = 900.0) -> Iterator[None]:
    """Uses the running platform, or starts one (``llmops up``) for the duration and stops it after."""
    if running():
        yield
        return
    log("no platform answers: starting one (llmops up), which takes a minute or two ...")
    process = subprocess.Popen(
        [sys.executable, "-m", "llmops_cli.main", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout_s
        for line in process.stdout:
            if READY_LINE in line:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the platform did not become ready in time")
        else:
            raise RuntimeError(f"llmops up exited with {process.wait()} before the platform was ready")
        log("platform ready")
        yield
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=60)
        if process.poll() is None:
            process.kill()


class Services:
    """Admin clients of the services (``llmops up`` gives them one admin token) and the base model's name."""

    def __init__(self) -> None:
        token = admin_token()
        self.urls = {name: service_url(name) for name in ("gateway", "feedback", "trainer", "retriever", "inference")}
        headers = {"authorization": f"Bearer {token}"}
        self.admin = {
            name: httpx.Client(base_url=url, headers=headers, timeout=60, trust_env=False)
            for name, url in self.urls.items()
        }

    def call(self, service: str, method: str, path: str, **kwargs) -> dict:
        response = self.admin[service].request(method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{service} {method} {path}: {response.status_code} {response.text[:300]}")
        return response.json() if response.content else {}

    def _models(self) -> list[dict]:
        # The inference service's /v1 needs its serving token, or the admin token, which `llmops up` gives it too.
        return self.call("inference", "GET", "/v1/models")["data"]

    def base_model(self) -> str:
        return next(m["id"] for m in self._models() if not m.get("parent"))

    def served_models(self) -> set[str]:
        return {m["id"] for m in self._models()}

    def user_client(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.urls["gateway"], headers={"authorization": f"Bearer {key}"}, timeout=180, trust_env=False
        )

    def close(self) -> None:
        for client in self.admin.values():
            client.close()
