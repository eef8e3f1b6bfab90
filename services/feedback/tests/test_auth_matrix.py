"""Every feedback route but the probes refuses a request without the admin or ingest token, or with a wrong one
(401 in the OpenAI error body). The app runs in-process with its lifespan (SQLite: cheap). And no missing, default
or short token is accepted outside dev mode."""

import secrets

import pytest
from fastapi.testclient import TestClient

from llmops_common.settings import InsecureSettingsError
from llmops_feedback.app import create_app
from llmops_feedback.settings import DEV_ADMIN_TOKEN, DEV_INGEST_TOKEN, FeedbackSettings
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


@pytest.mark.parametrize(
    "field,name,value",
    [
        ("admin_token", "FEEDBACK_ADMIN_TOKEN", None),
        ("admin_token", "FEEDBACK_ADMIN_TOKEN", DEV_ADMIN_TOKEN),
        ("admin_token", "FEEDBACK_ADMIN_TOKEN", "short"),
        ("ingest_token", "FEEDBACK_INGEST_TOKEN", None),
        ("ingest_token", "FEEDBACK_INGEST_TOKEN", DEV_INGEST_TOKEN),
        ("ingest_token", "FEEDBACK_INGEST_TOKEN", "short"),
    ],
)
def test_no_default_or_weak_tokens_outside_dev_mode(tmp_path, field, name, value):
    tokens = {"admin_token": secrets.token_urlsafe(24), "ingest_token": secrets.token_urlsafe(24), field: value}
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'feedback.db'}"
    with pytest.raises(InsecureSettingsError, match=name):
        create_app(FeedbackSettings(**tokens, database_url=database_url, dev_mode=False))
    create_app(FeedbackSettings(**tokens, database_url=database_url, dev_mode=True))  # local use only
