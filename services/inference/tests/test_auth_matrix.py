"""Every route of the inference service's own API but the probes refuses a request without its token, or with a
wrong one (401 in the OpenAI error body): the admin API always, the OpenAI surface (/v1/*) once
``INFERENCE_SERVING_TOKEN`` is set (unset it stays open, as documented in SECURITY.md).

The app is built in-process without its lifespan (which starts vLLM): its state holds the tokens and nothing else,
so a route that reached anything past its token check would fail with a 500, which the matrix reports as open.
"""

import secrets
from types import SimpleNamespace

from fastapi.testclient import TestClient

from llmops_inference.app import create_app
from llmops_inference.settings import InferenceSettings
from llmops_testkit.auth_matrix import open_routes, operations
from llmops_testkit.cors import cors_problems

OPENAI_SURFACE = {"/v1/chat/completions", "/v1/completions", "/v1/models"}  # open without a serving token


def app_with(tmp_path, *, serving_token: str | None):
    admin_token = secrets.token_urlsafe(24)
    settings = InferenceSettings(
        admin_token=admin_token, serving_token=serving_token, state_dir=tmp_path, dev_mode=False
    )
    app = create_app(settings)
    app.state.inference = SimpleNamespace(admin_token=admin_token, serving_token=serving_token)
    return app, TestClient(app, raise_server_exceptions=False)  # not entered: the lifespan does not run


def test_every_route_refuses_missing_and_wrong_tokens_with_a_serving_token(tmp_path):
    app, client = app_with(tmp_path, serving_token=secrets.token_urlsafe(24))
    assert {path for _, path in operations(app)} >= OPENAI_SURFACE
    assert open_routes(client, app) == []
    assert cors_problems(client, [("GET", "/healthz"), *operations(app)[:3]]) == []


def test_without_a_serving_token_only_the_openai_surface_is_open(tmp_path):
    app, client = app_with(tmp_path, serving_token=None)
    assert open_routes(client, app, public=OPENAI_SURFACE) == []
