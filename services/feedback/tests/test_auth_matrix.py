"""Every feedback route but the probes refuses a request without the admin or ingest token, or with a wrong one
(401 in the OpenAI error body). The app runs in-process with its lifespan (SQLite: cheap)."""

import secrets

from fastapi.testclient import TestClient

from llmops_feedback.app import create_app
from llmops_feedback.settings import FeedbackSettings
from llmops_testkit.auth_matrix import open_routes, operations
from llmops_testkit.cors import cors_problems


def test_every_route_refuses_missing_and_wrong_tokens(tmp_path):
    settings = FeedbackSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'feedback.db'}",
        admin_token=secrets.token_urlsafe(24),
        ingest_token=secrets.token_urlsafe(24),
        dev_mode=False,
    )
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert len(operations(app)) > 10  # the matrix found the API, not an empty document
        assert open_routes(client, app) == []
        assert cors_problems(client, [("GET", "/healthz"), *operations(app)[:3]]) == []
