"""A feedback service under test: a real process and an admin client."""

import secrets
from pathlib import Path

import httpx

from llmops_testkit.processes import ServiceProcess


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
        self.process.start()
        return self

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
