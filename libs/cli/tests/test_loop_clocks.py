"""``llmops up`` runs the closed loop's clocks faster than the services' cluster defaults (the controller's pass and
inference's registry read: 5 s), unless the service's own environment variable says otherwise."""

from pathlib import Path

import pytest

from llmops_cli.services import DEFAULT_PORTS, PlatformContext, platform_services
from llmops_cli.state import Secrets
from llmops_feedback.settings import FeedbackSettings
from llmops_inference.settings import InferenceSettings

CLOCKS = {"feedback": ("FEEDBACK_EXPERIMENT_INTERVAL_S", "experiment_interval_s", FeedbackSettings),
          "inference": ("INFERENCE_SYNC_INTERVAL_S", "sync_interval_s", InferenceSettings)}  # fmt: skip


def _settings(service: str, monkeypatch, tmp_path):
    secrets = Secrets(admin_token="a" * 32, key_secret="k" * 32, ingest_token="i" * 32, retriever_token="r" * 32,
                      serving_token="s" * 32, path=Path(tmp_path / "secrets.env"))  # fmt: skip
    ctx = PlatformContext(state=tmp_path, secrets=secrets, redis_url="redis://127.0.0.1:6379/0", ports=DEFAULT_PORTS)
    spec = next(s for s in platform_services(ctx) if s.name == service)
    for name, value in spec.env.items():
        monkeypatch.setenv(name, value)
    _, field, settings = CLOCKS[service]
    return getattr(settings(), field)


@pytest.mark.parametrize("service", CLOCKS)
def test_the_loops_clocks_tick_every_five_seconds_unless_set(service, monkeypatch, tmp_path):
    variable = CLOCKS[service][0]
    monkeypatch.delenv(variable, raising=False)
    assert _settings(service, monkeypatch, tmp_path) == 5.0
    monkeypatch.setenv(variable, "30")
    assert _settings(service, monkeypatch, tmp_path) == 30.0
