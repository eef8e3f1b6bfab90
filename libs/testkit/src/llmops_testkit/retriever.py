"""A retriever under test: a real process (real embeddings, a real Qdrant engine) and clients for its API."""

import secrets
from pathlib import Path

import httpx

from llmops_testkit.processes import ServiceProcess


def retriever_env(
    *, store: str, state_dir: Path, admin_token: str, read_token: str, **overrides: str
) -> dict[str, str]:
    """Production-like settings (no dev mode). ``store`` "edge" keeps shards under ``state_dir``; "qdrant" runs
    qdrant-client's local mode in memory, standing in for a Qdrant server."""
    env = {
        "RETRIEVER_ADMIN_TOKEN": admin_token,
        "RETRIEVER_READ_TOKEN": read_token,
        "RETRIEVER_DEV_MODE": "false",
        "RETRIEVER_STORE": store,
        "RETRIEVER_LOG_LEVEL": "INFO",
    }
    if store == "edge":
        env["RETRIEVER_DATA_DIR"] = str(state_dir / "data")
    else:
        env["RETRIEVER_QDRANT_URL"] = ":memory:"
    env.update(overrides)
    return env


class Retriever:
    def __init__(self, *, env: dict[str, str], state_dir: Path, port: int | None = None) -> None:
        self.env = env
        self.state_dir = state_dir
        self.admin_token = env["RETRIEVER_ADMIN_TOKEN"]
        self.read_token = env["RETRIEVER_READ_TOKEN"]
        self.process = ServiceProcess(
            "llmops_retriever.app:create_app", env=env, port=port, log_dir=state_dir, name="retriever"
        )

    @property
    def url(self) -> str:
        return self.process.url

    def start(self) -> "Retriever":
        self.launch()
        self.wait()
        return self

    def launch(self) -> None:
        """Starts the service without waiting; ``wait`` for it (see ``processes.start_together``)."""
        self.process.launch()

    def wait(self) -> None:
        # Loading torch and the embedding model takes a while on 2 busy cores.
        self.process.wait(timeout_s=180)

    def stop(self) -> None:
        self.process.stop()

    def restart(self) -> "Retriever":
        self.stop()
        return self.start()

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {self.admin_token}"}, timeout=120)

    def reader(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {self.read_token}"}, timeout=60)

    def create_collection(self, name: str, **fields) -> dict:
        with self.admin() as client:
            response = client.post("/v1/collections", json={"name": name, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    def ingest(self, collection: str, documents: list[dict]) -> dict:
        with self.admin() as client:
            response = client.post(f"/v1/collections/{collection}/documents", json={"documents": documents})
        assert response.status_code == 200, response.text
        return response.json()

    def search(self, collection: str, query: str, **fields) -> list[dict]:
        with self.reader() as client:
            response = client.post(f"/v1/collections/{collection}/search", json={"query": query, **fields})
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def gateway_env(self) -> dict[str, str]:
        """What a gateway needs to retrieve context here."""
        return {"GATEWAY_RETRIEVER_URL": self.url, "GATEWAY_RETRIEVER_TOKEN": self.read_token}


def new_tokens() -> tuple[str, str]:
    return secrets.token_urlsafe(24), secrets.token_urlsafe(24)
