"""A gateway under test: a real process, and a client for its admin API and OpenAI surface."""

import secrets
import uuid
from pathlib import Path

import httpx

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
