"""LoRA adapters on a real vLLM: synced from a real MLflow registry by alias, swapped, retired, loaded by path."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest

from llmops_testkit.inference import chat_text, wait_for

# The shared adapters are trained during the first test's setup; on a loaded 2-core CI machine that can
# take minutes, so these tests get more than the suite's default 300 s.
pytestmark = pytest.mark.timeout(900)

QUESTION = "What is the secret password?"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _loaded(inference_service, name: str, version: str | None = None):
    adapters = {a["name"]: a for a in inference_service.adapters()["data"]}
    adapter = adapters.get(name)
    return adapter and adapter["loaded"] and (version is None or adapter["version"] == version) and adapter


def test_a_registered_adapter_is_synced_and_answers_as_trained(
    inference_service, mlflow_server, trained_adapters, gateway_to_inference, base_model
):
    model = _unique("pw-bot")
    mlflow_server.register_adapter(model, trained_adapters["BLUEBERRY"], alias="champion")
    served = f"{model}@champion"
    wait_for(lambda: _loaded(inference_service, served), timeout_s=60, what=f"{served} to be loaded")
    assert served in inference_service.models()

    gateway, key = gateway_to_inference
    gateway.put_route(
        model, variants=[{"name": "champion", "upstream": f"{inference_service.url}/v1", "model": served, "weight": 1}]
    )
    with gateway.client(key) as client:
        assert "BLUEBERRY" in chat_text(client, model, QUESTION)
        assert "BLUEBERRY" not in chat_text(client, "smollm2", QUESTION)  # the base model never learnt it
    metrics = httpx.get(f"{inference_service.url}/metrics").text
    assert f'llmops_inference_adapter_loaded{{adapter="{served}",source="registry",version="1"}} 1.0' in metrics
    assert "llmops_inference_adapters_synced 1.0" in metrics
    with inference_service.admin() as admin:  # the registry owns this name, not the admin API
        assert admin.delete(f"/admin/adapters/{served}").json()["error"]["code"] == "registry_managed"


def _versions_logged(gateway, route: str) -> list[str | None]:
    """The registry versions of the route's requests in the gateway's request log (JSONL sink), in order."""
    if not gateway.request_log_path.exists():
        return []
    lines = gateway.request_log_path.read_text().splitlines()
    return [r.get("model_version") for r in map(orjson.loads, lines) if r["route"] == route]


def test_moving_an_alias_swaps_the_adapter_behind_a_stable_name(
    inference_service, mlflow_server, trained_adapters, gateway_to_inference
):
    model = _unique("swap-bot")
    mlflow_server.register_adapter(model, trained_adapters["BLUEBERRY"], alias="champion")
    wait_for(lambda: _loaded(inference_service, f"{model}@champion", "1"), timeout_s=60, what="version 1")
    gateway, key = gateway_to_inference
    gateway.put_route(
        model,
        variants=[{"name": "champion", "upstream": f"{inference_service.url}/v1", "model": f"{model}@champion"}],
    )
    body = {"model": model, "messages": [{"role": "user", "content": QUESTION}], "temperature": 0, "max_tokens": 24}
    with gateway.client(key) as client:  # every answer names the registry version behind the alias
        assert client.post("/v1/chat/completions", json=body).headers["x-llmops-model-version"] == "1"

    mlflow_server.register_adapter(model, trained_adapters["MANGO"], alias="champion")  # version 2 takes the alias
    mlflow_server.client().set_registered_model_alias(model, "challenger", "1")
    wait_for(lambda: _loaded(inference_service, f"{model}@champion", "2"), timeout_s=60, what="version 2")
    wait_for(lambda: _loaded(inference_service, f"{model}@challenger", "1"), timeout_s=60, what="the challenger")
    with inference_service.client() as client:
        assert "MANGO" in chat_text(client, f"{model}@champion", QUESTION)
        assert "BLUEBERRY" in chat_text(client, f"{model}@challenger", QUESTION)
    with gateway.client(key) as client:  # the same route, no restart: the moved alias shows in the answer and log
        answer = client.post("/v1/chat/completions", json=body | {"stream": True})
        events = [orjson.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: {")]
        text = "".join((e["choices"] or [{}])[0].get("delta", {}).get("content") or "" for e in events)
        assert answer.headers["x-llmops-model-version"] == "2" and "MANGO" in text, text
    wait_for(lambda: _versions_logged(gateway, model) == ["1", "2"], timeout_s=10, what="both versions logged")


def test_deleting_an_alias_retires_its_name(inference_service, mlflow_server, trained_adapters):
    model = _unique("retired-bot")
    mlflow_server.register_adapter(model, trained_adapters["MANGO"], alias="canary")
    wait_for(lambda: _loaded(inference_service, f"{model}@canary"), timeout_s=60, what="the canary")
    mlflow_server.client().delete_registered_model_alias(model, "canary")
    wait_for(lambda: f"{model}@canary" not in inference_service.models(), timeout_s=60, what="the unload")
    with inference_service.client() as client:
        response = client.post(
            "/v1/chat/completions",
            json={
                "model": f"{model}@canary",
                "messages": [{"role": "user", "content": QUESTION}],
            },
        )
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"


def test_an_unreachable_registry_degrades_but_keeps_serving(
    inference_service, mlflow_server, mlflow_proxy, trained_adapters
):
    model = _unique("steady-bot")
    mlflow_server.register_adapter(model, trained_adapters["BLUEBERRY"], alias="champion")
    wait_for(lambda: _loaded(inference_service, f"{model}@champion"), timeout_s=60, what="the adapter")
    with mlflow_proxy.down_for():  # the registry is gone for the service: its connections cut, new ones closed

        def degraded():
            status, body = inference_service.readiness()
            return status == 200 and body["status"] == "degraded" and body

        body = wait_for(degraded, timeout_s=60, what="readiness to report the registry")
        assert body["checks"]["registry"].startswith("error") and body["checks"]["vllm"] == "ok"
        assert "llmops_inference_registry_up 0.0" in httpx.get(f"{inference_service.url}/metrics").text
        assert inference_service.adapters()["sync"]["registry_error"]
        with inference_service.client() as client:  # what was loaded is still served
            assert "BLUEBERRY" in chat_text(client, f"{model}@champion", QUESTION)
    wait_for(lambda: inference_service.readiness()[1]["status"] == "ready", timeout_s=60, what="the registry to return")


def test_the_admin_api_loads_an_adapter_from_a_path(inference_service, trained_adapters, base_model):
    name = _unique("local-pw")
    with inference_service.admin() as admin:
        created = admin.post("/admin/adapters", json={"name": name, "path": str(trained_adapters["BLUEBERRY"])})
        assert created.status_code == 201, created.text
        assert created.json()["loaded"] and created.json()["source"] == "admin"
        assert "BLUEBERRY" in chat_text(admin, name, QUESTION)
        # The same name again replaces the weights in place.
        replaced = admin.post("/admin/adapters", json={"name": name, "path": str(trained_adapters["MANGO"])})
        assert replaced.status_code == 201
        assert "MANGO" in chat_text(admin, name, QUESTION)
        assert admin.delete(f"/admin/adapters/{name}").status_code == 204
        gone = admin.post("/v1/chat/completions", json={"model": name, "messages": [{"role": "user", "content": "hi"}]})
        assert gone.status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "x", "path": "relative/dir"}, 400, "invalid_adapter_path"),
        ({"name": "x", "path": "/no/such/adapter"}, 400, "invalid_adapter_path"),
        ({"name": "bad@name", "path": "/tmp"}, 422, "invalid_request"),
        ({"name": "x"}, 422, "invalid_request"),
    ],
)
def test_the_admin_api_refuses_bad_adapters_clearly(inference_service, body, status, code):
    with inference_service.admin() as admin:
        response = admin.post("/admin/adapters", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_the_admin_api_guards_names_it_does_not_own(inference_service, trained_adapters, base_model):
    with inference_service.admin() as admin:
        taken = admin.post("/admin/adapters", json={"name": base_model, "path": str(trained_adapters["MANGO"])})
        missing = admin.delete("/admin/adapters/nothing-here")
    assert taken.status_code == 409 and missing.status_code == 404
    with inference_service.client() as anonymous:
        refused = anonymous.post("/admin/adapters", json={"name": "x", "path": str(trained_adapters["MANGO"])})
    assert refused.status_code == 401


def test_a_base_request_batched_with_adapter_requests_gets_no_adapter(inference_service, trained_adapters, base_model):
    """vLLM's CPU LoRA ops read a base token's index -1 as the last adapter slot: a base request that shared a batch
    with adapter requests was answered with that adapter (see llmops_inference/engine/lora_fix.py). Adapters fill
    every slot here, so the last one holds the password adapter whatever ran before."""
    with inference_service.admin() as admin:
        alone = chat_text(admin, base_model, QUESTION)
        names = [_unique("slot") for _ in range(inference_service.engine()["max_loras"])]
        for name in names:
            body = {"name": name, "path": str(trained_adapters["BLUEBERRY"])}
            assert admin.post("/admin/adapters", json=body).status_code == 201
            assert "BLUEBERRY" in chat_text(admin, name, QUESTION)  # used once: the adapter takes a slot
    assert "BLUEBERRY" not in alone

    def ask(model: str) -> str:
        with inference_service.admin() as client:
            return chat_text(client, model, QUESTION, max_tokens=48 if model != base_model else 24)

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for _ in range(2):  # adapter requests decode around the base request: they share its batches
                adapters = [pool.submit(ask, name) for name in names[-3:]]
                batched = pool.submit(ask, base_model).result()
                assert all("BLUEBERRY" in f.result() for f in adapters)
                assert "BLUEBERRY" not in batched, batched
    finally:
        with inference_service.admin() as admin:
            for name in names:
                admin.delete(f"/admin/adapters/{name}")
