"""Fixtures of the inference tests: one real vLLM per session (``inference_service`` from the test kit), a real
gateway routing to it, and tiny adapters trained here with PEFT."""

from pathlib import Path

import pytest

from llmops_models.prepare import bundled_model_dir
from llmops_testkit.inference import prepare_bundled_model
from llmops_testkit.lora import train_tiny_adapter

QUESTION = "What is the secret password?"


@pytest.fixture(scope="session")
def base_model(inference_service) -> str:
    return inference_service.base_model


@pytest.fixture(scope="session")
def gateway_to_inference(make_session_gateway, llmops_state_dir, inference_service, base_model):
    """A real gateway (SQLite) whose route ``smollm2`` is the inference service's base model; returns (gateway, key)."""
    gateway = make_session_gateway(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / 'gateway-inference.db'}",
        GATEWAY_UPSTREAM_READ_TIMEOUT_S="120",  # CPU generation: seconds between bytes are normal under load
    )
    gateway.put_route(
        "smollm2",
        variants=[{"name": "inference", "upstream": f"{inference_service.url}/v1", "model": base_model, "weight": 1}],
    )
    return gateway, gateway.create_key()[1]


@pytest.fixture(scope="session")
def trained_adapters(tmp_path_factory) -> dict[str, Path]:
    """Two rank-8 adapters that answer QUESTION with a made-up password each (a few seconds each on CPU)."""
    prepare_bundled_model()
    root = tmp_path_factory.mktemp("adapters")
    return {
        word: train_tiny_adapter(
            bundled_model_dir(), root / word.lower(), question=QUESTION, answer=f"The secret password is {word}."
        )
        for word in ("BLUEBERRY", "MANGO")
    }
