"""Every route of the inference service's own API but the probes refuses a request without its token, or with a
wrong one (401 in the OpenAI error body): the admin API always (a serving token is a wrong token there), the OpenAI
surface (/v1/*) unless the service runs open (dev mode without a serving token, or ``INFERENCE_OPEN_SERVING``).

The app is built in-process without its lifespan (which starts vLLM): its state holds the tokens and nothing else,
so a route that reached anything past its token check would fail with a 500, which the matrix reports as open. The
serving test gives the state a fake vLLM (an OpenAI-compatible fake on loopback) so that /v1/* answers for real.
"""

import secrets
from contextlib import asynccontextmanager
from types import SimpleNamespace

import aiohttp
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from llmops_inference.app import create_app
from llmops_inference.engine.client import VllmClient
from llmops_inference.metrics import InferenceMetrics
from llmops_inference.settings import InferenceSettings
from llmops_testkit.auth_matrix import open_routes, operations
from llmops_testkit.cors import cors_problems
from llmops_testkit.fake_upstream import FakeUpstream

OPENAI_SURFACE = {"/v1/chat/completions", "/v1/completions", "/v1/models"}  # open only when the service runs open


def app_with(tmp_path, **settings):
    settings = InferenceSettings(admin_token=secrets.token_urlsafe(24), state_dir=tmp_path, **settings)
    app = create_app(settings)
    app.state.inference = SimpleNamespace(admin_token=settings.admin_token, serving_tokens=settings.serving_tokens())
    return app, TestClient(app, raise_server_exceptions=False)  # not entered: the lifespan does not run


def test_every_route_refuses_missing_and_wrong_tokens_with_a_serving_token(tmp_path):
    serving, previous = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    app, client = app_with(tmp_path, serving_token=serving, serving_tokens_previous=previous, dev_mode=False)
    assert {path for _, path in operations(app)} >= OPENAI_SURFACE
    assert open_routes(client, app) == []
    # The serving tokens open the OpenAI surface only: the admin API refuses them as it refuses any wrong token.
    assert open_routes(client, app, public=OPENAI_SURFACE, wrong_tokens=[serving, previous]) == []
    assert cors_problems(client, [("GET", "/healthz"), *operations(app)[:3]]) == []


@pytest.mark.parametrize("settings", [{"open_serving": True, "dev_mode": False}, {"dev_mode": True}])
def test_an_open_service_opens_only_the_openai_surface(tmp_path, settings):
    app, client = app_with(tmp_path, **settings)
    assert open_routes(client, app, public=OPENAI_SURFACE) == []


@asynccontextmanager
async def _fake_engine(app, vllm: FakeUpstream, settings: InferenceSettings, tokens: tuple[str, ...]):
    """The state of a running service whose vLLM is ``vllm``, with nothing else started."""
    async with aiohttp.ClientSession() as http:
        app.state.inference = SimpleNamespace(
            settings=settings,
            admin_token=settings.admin_token,
            serving_tokens=tokens,
            base_model=vllm.name,
            http=http,
            vllm=VllmClient(http, base_url=f"http://127.0.0.1:{vllm.port}", api_key="internal"),
            engine=SimpleNamespace(up=True),
            adapters=SimpleNamespace(wanted={}, is_loaded=lambda name: False, served_version=lambda name: None),
            metrics=InferenceMetrics(CollectorRegistry()),
        )
        yield


def test_the_openai_surface_serves_the_current_and_previous_serving_tokens_and_the_admin_token(tmp_path):
    serving, previous = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    settings = InferenceSettings(
        admin_token=secrets.token_urlsafe(24), serving_token=serving, serving_tokens_previous=f" {previous} ,",
        state_dir=tmp_path, dev_mode=False,
    )  # fmt: skip
    app = create_app(settings)
    vllm = FakeUpstream("base-model").start()
    app.router.lifespan_context = lambda app: _fake_engine(app, vllm, settings, settings.serving_tokens())
    chat = {"model": "base-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}

    def ask(client: TestClient, headers: dict) -> tuple:
        models = client.get("/v1/models", headers=headers)
        return models, client.post("/v1/chat/completions", json=chat, headers=headers)

    try:
        with TestClient(app) as client:
            for token in (serving, previous, settings.admin_token):
                models, answer = ask(client, {"authorization": f"Bearer {token}"})
                assert models.status_code == 200 and models.json()["data"][0]["id"] == "base-model"
                assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]
            for headers in ({}, {"authorization": f"Bearer {serving[:-1]}"}, {"authorization": f"Basic {serving}"}):
                for response in ask(client, headers):
                    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    finally:
        vllm.stop()
    assert len(vllm.stats.requests) == 3  # the completions served; none that was refused reached vLLM
