"""The vLLM process under the service's supervision: a crash is restarted, readiness follows, adapters come back."""

import os
import signal

import httpx
import pytest

from llmops_testkit.inference import chat_text, wait_for

# The shared adapters are trained during the first test's setup; on a loaded 2-core CI machine that can
# take minutes, so these tests get more than the suite's default 300 s.
pytestmark = pytest.mark.timeout(900)


def test_a_killed_vllm_is_restarted_and_readiness_follows(inference_service, trained_adapters, base_model):
    with inference_service.admin() as admin:  # an adapter that must survive the restart
        assert (
            admin.post("/admin/adapters", json={"name": "survivor", "path": str(trained_adapters["MANGO"])}).status_code
            == 201
        )
    before = inference_service.engine()
    os.kill(before["pid"], signal.SIGKILL)

    def not_ready():
        status, body = inference_service.readiness()
        return status == 503 and body

    body = wait_for(not_ready, timeout_s=15, what="readiness to drop")
    assert body["checks"]["vllm"].startswith("error")
    with inference_service.client() as client:
        refused = client.post(
            "/v1/chat/completions",
            json={
                "model": base_model,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["error"]["code"] == "vllm_unavailable"

    wait_for(lambda: inference_service.readiness()[0] == 200, timeout_s=240, what="vLLM to come back")
    after = inference_service.engine()
    assert after["generation"] == before["generation"] + 1 and after["restarts"] == before["restarts"] + 1
    assert after["pid"] != before["pid"] and "code -9" in after["last_exit"]
    assert "survivor" in inference_service.models()  # re-loaded onto the new vLLM before it counted as ready
    with inference_service.client() as client:
        assert "MANGO" in chat_text(client, "survivor", "What is the secret password?")
        assert "Paris" in chat_text(client, base_model, "What is the capital of France?")
    metrics = httpx.get(f"{inference_service.url}/metrics").text
    assert f"llmops_inference_vllm_restarts_total {after['restarts']:.1f}" in metrics
