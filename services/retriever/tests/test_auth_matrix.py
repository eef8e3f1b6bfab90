"""Every retriever route but the probes refuses a request without the read or admin token, or with a wrong one
(401 in the OpenAI error body); and no missing, default or short token is accepted outside dev mode.

The app is built in-process without its lifespan (which loads the embedding model: seconds of CPU): its state holds
the tokens and nothing else, so a route that reached anything past its token check would fail with a 500, which the
matrix reports as open.
"""

import secrets
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from llmops_common.settings import InsecureSettingsError
from llmops_retriever.app import create_app
from llmops_retriever.settings import DEV_ADMIN_TOKEN, DEV_READ_TOKEN, RetrieverSettings
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


@pytest.mark.parametrize(
    "field,name,value",
    [
        ("admin_token", "RETRIEVER_ADMIN_TOKEN", None),
        ("admin_token", "RETRIEVER_ADMIN_TOKEN", DEV_ADMIN_TOKEN),
        ("admin_token", "RETRIEVER_ADMIN_TOKEN", "short"),
        ("read_token", "RETRIEVER_READ_TOKEN", None),
        ("read_token", "RETRIEVER_READ_TOKEN", DEV_READ_TOKEN),
        ("read_token", "RETRIEVER_READ_TOKEN", "short"),
    ],
)
def test_no_default_or_weak_tokens_outside_dev_mode(tmp_path, field, name, value):
    tokens = {"admin_token": secrets.token_urlsafe(24), "read_token": secrets.token_urlsafe(24), field: value}
    with pytest.raises(InsecureSettingsError, match=name):
        create_app(RetrieverSettings(**tokens, data_dir=str(tmp_path / "data"), dev_mode=False))
    create_app(RetrieverSettings(**tokens, data_dir=str(tmp_path / "data"), dev_mode=True))  # local use only
