"""``llmops up`` wires the gateway's web console to every service it reads: the settings the gateway would load
from the spec's environment name each service at its own port, with the token that service checks."""

import os
from pathlib import Path
from urllib.parse import urlsplit

from llmops_cli.services import DEFAULT_PORTS, PlatformContext, platform_services
from llmops_cli.state import Secrets
from llmops_gateway.settings import GatewaySettings


def test_the_console_reaches_every_service_it_shows(monkeypatch, tmp_path):
    secrets = Secrets(
        admin_token="a" * 32,
        key_secret="k" * 32,
        ingest_token="i" * 32,
        retriever_token="r" * 32,
        serving_token="s" * 32,
        path=Path(tmp_path / "secrets.env"),
    )
    ctx = PlatformContext(
        state=tmp_path, secrets=secrets, redis_url="redis://127.0.0.1:6379/0", ports=dict(DEFAULT_PORTS)
    )
    specs = {spec.name: spec for spec in platform_services(ctx)}
    for name in list(os.environ):  # only what the spec gives counts
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    for name, value in specs["gateway"].env.items():
        monkeypatch.setenv(name, value)
    settings = GatewaySettings()

    ports = {
        name: urlsplit(url).port
        for name, url in (
            ("feedback", settings.feedback_url),
            ("trainer", settings.trainer_url),
            ("mlflow", settings.mlflow_url),
            ("retriever", settings.retriever_url),
        )
    }
    assert ports == {name: specs[name].port for name in ports}
    assert settings.feedback_admin_token == specs["feedback"].env["FEEDBACK_ADMIN_TOKEN"]
    assert settings.trainer_admin_token == specs["trainer"].env["TRAINER_ADMIN_TOKEN"]
    assert settings.retriever_admin_token == specs["retriever"].env["RETRIEVER_ADMIN_TOKEN"]
    assert settings.console_enabled
