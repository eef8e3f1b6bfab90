"""Every trainer route but the probes refuses a request without the admin token, or with a wrong one (401 in the
OpenAI error body). The app runs in-process with its lifespan (SQLite, a Redis client that connects lazily)."""

import secrets

from fastapi.testclient import TestClient

from llmops_testkit.auth_matrix import open_routes, operations
from llmops_testkit.cors import cors_problems
from llmops_trainer.app import create_app
from llmops_trainer.settings import TrainerSettings


def test_every_route_refuses_missing_and_wrong_tokens(tmp_path, redis_url):
    settings = TrainerSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'trainer.db'}",
        redis_url=redis_url,
        redis_key_prefix=f"test:{secrets.token_hex(4)}:trainer:",
        admin_token=secrets.token_urlsafe(24),
        work_dir=str(tmp_path / "work"),
        dev_mode=False,
    )
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert len(operations(app)) >= 3
        assert open_routes(client, app) == []
        assert cors_problems(client, [("GET", "/healthz"), *operations(app)[:3]]) == []
