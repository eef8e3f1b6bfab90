"""``llmops up`` closes the inference service's OpenAI surface: a serving token is generated with the other secrets,
the inference service starts with it outside dev mode, and its callers hold it: the gateway, under the name the
default route's variant gives in ``api_key_env``, and the feedback service, which asks whether an adapter is served.

Each service's settings are read from its spec's environment as the service would read them; the route test runs a
real gateway in front of a fake inference service that refuses any request without the token."""

import os
from dataclasses import replace

import httpx
import pytest

from llmops_cli.defaults import DEFAULT_ROUTE, base_model, ensure_default_route
from llmops_cli.services import DEFAULT_PORTS, PlatformContext, platform_services
from llmops_cli.state import load_secrets, secrets_path
from llmops_common.contracts.models import BUNDLED_MODEL_NAME
from llmops_common.contracts.serving import INFERENCE_TOKEN_ENV
from llmops_feedback.settings import FeedbackSettings
from llmops_inference.settings import InferenceSettings
from llmops_testkit.fake_upstream import FakeUpstream
from llmops_testkit.gateway import chat_body


def _settings(cls, env: dict[str, str], monkeypatch):
    """``cls`` as the service reads it from exactly ``env`` (the test process's variables of its prefix hidden)."""
    prefix = cls.model_config["env_prefix"]
    with monkeypatch.context() as patch:
        for name in [n for n in os.environ if n.startswith(prefix)]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        return cls()


def test_up_gives_one_serving_token_to_inference_and_its_callers(monkeypatch, tmp_path):
    secrets = load_secrets(tmp_path)
    assert len(secrets.serving_token) >= 32
    assert secrets.serving_token not in (secrets.admin_token, secrets.ingest_token, secrets.retriever_token)
    ctx = PlatformContext(state=tmp_path, secrets=secrets, redis_url="redis://127.0.0.1:6379/0", ports=DEFAULT_PORTS)
    specs = {spec.name: spec for spec in platform_services(ctx)}

    inference = _settings(InferenceSettings, specs["inference"].env, monkeypatch)
    assert not inference.dev_mode and not inference.open_serving
    assert inference.serving_tokens() == (secrets.serving_token,)  # closed: it would refuse to start without one
    assert specs["gateway"].env[INFERENCE_TOKEN_ENV] == secrets.serving_token
    feedback = _settings(FeedbackSettings, specs["feedback"].env, monkeypatch)
    assert feedback.inference_serving_token == secrets.serving_token


def test_an_older_secrets_file_gets_a_serving_token_and_keeps_the_rest(tmp_path):
    first = load_secrets(tmp_path)
    path = secrets_path(tmp_path)
    path.write_text("".join(line for line in path.read_text().splitlines(True) if "SERVING" not in line))
    again = load_secrets(tmp_path)
    assert again.serving_token and again.serving_token != first.serving_token
    assert replace(again, serving_token=first.serving_token) == first
    assert load_secrets(tmp_path).serving_token == again.serving_token


def test_the_default_route_reaches_a_closed_inference_service_through_the_gateway(make_gateway, tmp_path):
    token = load_secrets(tmp_path).serving_token
    inference = FakeUpstream(BUNDLED_MODEL_NAME).start()
    inference.behaviour.api_key = token
    url = f"http://127.0.0.1:{inference.port}"
    gateway = make_gateway(sql_url=f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}", **{INFERENCE_TOKEN_ENV: token})

    def ensure() -> str:
        return ensure_default_route(
            gateway_url=gateway.url, inference_url=url, admin_token=gateway.admin_token, serving_token=token
        )

    def ask() -> int:
        with gateway.client(key) as client:
            return client.post("/v1/chat/completions", json=chat_body(DEFAULT_ROUTE)).status_code

    try:
        with pytest.raises(httpx.HTTPStatusError):  # the CLI's own question needs the token too
            base_model(url, serving_token="not-the-serving-token")
        assert inference.stats.refused == 1
        assert "created" in ensure()
        key = gateway.create_key()[1]
        assert ask() == 200
        assert inference.stats.headers[-1]["authorization"] == f"Bearer {token}"

        # A route made before the token (no api_key_env) is refused upstream, until `llmops up` gives it the token.
        variant = {"name": "inference", "upstream": f"{url}/v1", "model": BUNDLED_MODEL_NAME}
        gateway.put_route(DEFAULT_ROUTE, variants=[variant], fallbacks=[{**variant, "name": "again"}])
        assert ask() != 200 and inference.stats.refused > 1
        assert "now send the serving token" in ensure()
        with gateway.admin() as admin:
            spec = admin.get(f"/admin/routes/{DEFAULT_ROUTE}").json()
        assert [v["api_key_env"] for v in spec["variants"] + spec["fallbacks"]] == [INFERENCE_TOKEN_ENV] * 2
        assert ask() == 200
        assert "left as it is" in ensure()
    finally:
        inference.stop()
