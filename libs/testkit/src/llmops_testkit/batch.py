"""Batch workers under test: ``python -m llmops_gateway.batches.worker`` as real processes beside a real gateway."""

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
from openai import OpenAI

from llmops_cli.procs import free_port, spawn
from llmops_testkit.processes import CeleryWorkerProcess

FINISHED = ("completed", "cancelled", "failed", "expired")


def batch_env(gateway_url: str, **overrides: str) -> dict[str, str]:
    """What a gateway and its workers add for batches; short leases and rounds so tests see recovery in seconds."""
    return {
        "GATEWAY_BATCH_TOKEN": "test-batch-token-0123456789",
        "GATEWAY_BATCH_GATEWAY_URL": gateway_url,
        "GATEWAY_BATCH_LEASE_S": "3",
        "GATEWAY_BATCH_DISPATCH_INTERVAL_S": "0.3",
        "GATEWAY_BATCH_WORKER_CONCURRENCY": "1",
        **overrides,
    }


class BatchWorker(CeleryWorkerProcess):
    what = "batch worker"

    def __init__(self, *, env: dict[str, str], state_dir: Path, name: str) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "GATEWAY_BATCH_WORKER_PORT": str(self.port)}
        self.log_path = Path(state_dir) / f"{name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 60.0) -> "BatchWorker":
        """Returns once the worker consumes its queue (its /readyz answers 200)."""
        self.launch()
        return self.wait(timeout_s=timeout_s)

    def launch(self) -> None:
        """Starts the worker without waiting; ``wait`` for it (see ``processes.start_together``)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = spawn(
            [sys.executable, "-m", "llmops_gateway.batches.worker"],
            log_path=self.log_path,
            env=self.env,
            die_with_parent=True,
        )


def sdk(gateway, key: str) -> OpenAI:
    return OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def jsonl(items: list) -> bytes:
    return b"".join((item if isinstance(item, bytes) else orjson.dumps(item)) + b"\n" for item in items)


def chat_line(custom_id: str, route: str, content: str = "hello", **body) -> dict:
    body = {"model": route, "messages": [{"role": "user", "content": content}], "max_tokens": 4, **body}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def wait_for(client: OpenAI, batch_id: str, predicate, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if predicate(batch):
            return batch
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} never got there: {batch}")


def read_jsonl(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def logged(feedback, request_ids: set[str], timeout_s: float = 20.0) -> list[dict]:
    """The request-log records of these requests, as the feedback service stored them (delivery is moments late)."""
    deadline = time.monotonic() + timeout_s
    found: dict[str, dict] = {}
    with feedback.admin() as admin:
        while time.monotonic() < deadline:
            for request_id in request_ids - set(found):
                response = admin.get(f"/v1/requests/{request_id}")
                if response.status_code == 200:
                    found[request_id] = response.json()
            if len(found) == len(request_ids):
                break
            time.sleep(0.3)
    return list(found.values())


def submit(client: OpenAI, lines: list, name: str = "in.jsonl"):
    """The batch of these lines (uploaded, then created for chat completions), or the SDK's error for its submission."""
    uploaded = client.files.create(file=(name, io.BytesIO(jsonl(lines))), purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
