"""Every retriever route but the probes refuses a request without the read or admin token, or with a wrong one
(401 in the OpenAI error body).

The app is built in-process without its lifespan (which loads the embedding model: seconds of CPU): its state holds
the tokens and nothing else, so a route that reached anything past its token check would fail with a 500, which the
matrix reports as open.
"""

import secrets
from types import SimpleNamespace

from fastapi.testclient import TestClient

from llmops_retriever.app import create_app
from llmops_retriever.settings import RetrieverSettings
from llmops_testkit.auth_matrix import open_routes, operations
from llmops_testkit.cors import cors_problems


def test_every_route_refuses_missing_and_wrong_tokens(tmp_path):
    admin_token, read_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    settings = RetrieverSettings(
        admin_token=admin_token, read_token=read_token, data_dir=str(tmp_path / "data"), dev_mode=False
    )
    app = create_app(settings)
    app.state.retriever = SimpleNamespace(admin_token=admin_token, read_token=read_token)
    client = TestClient(app, raise_server_exceptions=False)  # not entered: the lifespan does not run
    assert len(operations(app)) > 5
    assert open_routes(client, app) == []
    assert cors_problems(client, [("GET", "/healthz"), *operations(app)[:3]]) == []
