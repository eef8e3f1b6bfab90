"""A gateway under test: a real process, and a client for its admin API and OpenAI surface."""

import secrets
import time
import uuid
from pathlib import Path

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from llmops_testkit.processes import ServiceProcess


def gateway_env(*, sql_url: str, redis_url: str, state_dir: Path, admin_token: str, key_secret: str) -> dict[str, str]:
    """Production-like settings (no dev mode), tuned so tests see breakers and caches act quickly."""
    return {
        "GATEWAY_ADMIN_TOKEN": admin_token,
        "GATEWAY_KEY_SECRET": key_secret,
        "GATEWAY_DEV_MODE": "false",
        "GATEWAY_DATABASE_URL": sql_url,
        "GATEWAY_REDIS_URL": redis_url,
        # A fresh key prefix per gateway group: tests never see counters of an earlier run.
        "GATEWAY_REDIS_KEY_PREFIX": f"test:{uuid.uuid4().hex[:8]}:",
        "GATEWAY_REQUEST_LOG_PATH": str(state_dir / "request-log.jsonl"),
        # Tests play many clients from one address, bad keys included: no lockout unless a test turns it on.
        "GATEWAY_AUTH_FAILURE_LIMIT": "0",
        "GATEWAY_AUTH_FAILURE_PREFIX_LIMIT": "0",
        "GATEWAY_BREAKER_FAILURE_THRESHOLD": "3",
        "GATEWAY_BREAKER_COOLDOWN_S": "1.0",
        "GATEWAY_UPSTREAM_READ_TIMEOUT_S": "2.0",
        "GATEWAY_LOG_LEVEL": "INFO",
    }


class Gateway:
    """One or more replicas sharing a database and Redis; ``url`` is the first replica."""

    def __init__(
        self, *, env: dict[str, str], state_dir: Path, replicas: int = 1, module: str = "llmops_gateway"
    ) -> None:
        """``module``: the production entry point by default; ``""`` runs the app under the bare uvicorn command."""
        self.env = env
        self.state_dir = state_dir
        self.admin_token = env["GATEWAY_ADMIN_TOKEN"]
        self.replicas = [
            ServiceProcess(
                "llmops_gateway.app:create_app",
                env=env,
                log_dir=state_dir,
                name=f"gateway-{i}",
                module=module,
            )
            for i in range(replicas)
        ]

    @property
    def url(self) -> str:
        return self.replicas[0].url

    @property
    def request_log_path(self) -> Path:
        return Path(self.env["GATEWAY_REQUEST_LOG_PATH"])

    def start(self) -> "Gateway":
        self.launch()
        self.wait()
        return self

    def launch(self) -> None:
        """Starts every replica without waiting; ``wait`` for them (see ``processes.start_together``)."""
        for replica in self.replicas:
            replica.launch()

    def wait(self, *, timeout_s: float = 60.0) -> None:
        """Until every replica is ready; the time allows for other services starting beside it."""
        for replica in self.replicas:
            replica.wait(timeout_s=timeout_s)

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()

    def logs(self) -> str:
        return "\n".join(r.log_path.read_text(errors="replace") for r in self.replicas if r.log_path.exists())

    def metric(self, name: str, labels: dict) -> float:
        """A sample's value on the first replica's /metrics (0 when it has none yet)."""
        for family in text_string_to_metric_families(httpx.get(f"{self.url}/metrics").text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return sample.value
        return 0.0

    def record(self, request_id: str, timeout_s: float = 5.0) -> dict:
        """The request's record in the JSONL request log, once it is written."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.request_log_path.exists():
                for line in self.request_log_path.read_bytes().splitlines():
                    record = orjson.loads(line)
                    if record["request_id"] == request_id:
                        return record
            time.sleep(0.05)
        raise AssertionError(f"no request-log record for {request_id}")

    def tpm_counter(self, rds, key_id: str) -> int:
        """The key's tokens counted in Redis in the current minute windows."""
        prefix = self.env["GATEWAY_REDIS_KEY_PREFIX"]
        return sum(int(rds.get(k) or 0) for k in rds.scan_iter(match=f"{prefix}{{{key_id}}}:tpm:*"))

    # --- admin API ---

    def admin(self, replica: int = 0) -> httpx.Client:
        return httpx.Client(
            base_url=self.replicas[replica].url, headers={"authorization": f"Bearer {self.admin_token}"}, timeout=10
        )

    def create_key(self, *, replica: int = 0, **fields) -> tuple[str, str]:
        """Returns (key id, secret)."""
        fields.setdefault("name", f"test-{uuid.uuid4().hex[:6]}")
        with self.admin(replica) as client:
            response = client.post("/admin/keys", json=fields)
        response.raise_for_status()
        body = response.json()
        return body["id"], body["key"]

    def put_route(self, name: str | None = None, *, replica: int = 0, **spec) -> str:
        name = name or f"route-{uuid.uuid4().hex[:8]}"
        with self.admin(replica) as client:
            response = client.put(f"/admin/routes/{name}", json=spec)
        assert response.status_code == 200, response.text
        return name

    def client(self, key: str, replica: int = 0, **kwargs) -> httpx.Client:
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.replicas[replica].url, headers={"authorization": f"Bearer {key}"}, **kwargs)


def new_secrets() -> tuple[str, str]:
    return secrets.token_urlsafe(24), secrets.token_urlsafe(32)


def variant(name: str, upstream, *, model: str | None = None, weight: float = 1.0) -> dict:
    return {"name": name, "upstream": upstream.base_url, "model": model or f"{name}-model", "weight": weight}


def chat_body(route: str, content: str = "hello", **extra) -> dict:
    return {"model": route, "messages": [{"role": "user", "content": content}], **extra}


def sse_events(lines) -> list[dict | str]:
    """The ``data:`` payloads of an SSE stream, JSON decoded where they are JSON."""
    events = []
    for line in lines:
        if line.startswith("data:"):
            payload = line[5:].strip()
            try:
                events.append(orjson.loads(payload))
            except orjson.JSONDecodeError:
                events.append(payload)
    return events


def read_until(read, until, timeout_s: float = 3.0):
    """``read()`` again until ``until(value)`` holds or the time is up; the last value (for the caller to assert)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if until(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.02)
