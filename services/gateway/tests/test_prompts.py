"""Routes that name prompts in MLflow's prompt registry (a real MLflow server): checked when saved, served from the
gateway's cache, an alias move followed without a restart, a vanished alias refused with 503 and counted, and the
prompt's name and version in the request log and the spend records."""

import time
import uuid

import httpx
import pytest

from llmops_common.contracts import prompts as contract
from llmops_testkit.fake_retriever import FakeRetriever
from llmops_testkit.gateway import chat_body, variant
from llmops_testkit.spend import wait_spend
from llmops_testkit.tcp_proxy import TcpProxy

TTL_S = 0.5


@pytest.fixture(scope="module")
def outage(mlflow_server):
    """MLflow as the gateway reaches it, to be taken "briefly down" (``down_for()``): its connections cut, open or
    new."""
    proxy = TcpProxy("127.0.0.1", mlflow_server.port).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def retriever():
    fake = FakeRetriever(["The lighthouse keeper is Ada Quill.", "Tides turn at noon."]).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(make_gateway, llmops_state_dir, outage, retriever):
    return make_gateway(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'prompts-{uuid.uuid4().hex[:6]}.db'}",
        GATEWAY_MLFLOW_URL=f"http://127.0.0.1:{outage.port}",
        GATEWAY_PROMPT_CACHE_TTL_S=str(TTL_S),
        **retriever.gateway_env(),
    )


@pytest.fixture(scope="module")
def mlflow(mlflow_server):
    return mlflow_server.client()


@pytest.fixture(scope="module")
def key(gateway):
    return gateway.create_key()[1]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _put(gateway, name: str, spec: dict) -> httpx.Response:
    with gateway.admin() as admin:
        return admin.put(f"/admin/routes/{name}", json=spec)


def _record(gateway, request_id: str) -> dict:
    import json

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if gateway.request_log_path.exists():
            for line in gateway.request_log_path.read_text().splitlines():
                record = json.loads(line)
                if record["request_id"] == request_id:
                    return record
        time.sleep(0.05)
    raise AssertionError(f"no request record {request_id}")


def test_the_contract_refuses_templates_with_holes():
    with pytest.raises(ValueError, match=r"unknown variable \{\{context\}\}"):
        contract.parts("Use {{context}} to answer.")
    with pytest.raises(ValueError, match="double braces"):
        contract.parts([{"role": "user", "content": "{sources} {{question}}"}])
    with pytest.raises(ValueError, match="needs {{question}}"):
        contract.parts([{"role": "system", "content": "S"}, {"role": "user", "content": "{{sources}}"}])
    with pytest.raises(ValueError, match="needs {{sources}}"):
        contract.parts("Be brief.", rag=True)
    for version, texts in contract.BUILTIN.items():  # the built-ins survive the trip to the registry unchanged
        parts = contract.parts(contract.to_registry(texts["system"], texts["user"]), rag=True)
        assert (parts.system, parts.user or "{question}") == (texts["system"], texts["user"]), version


def test_a_reference_that_does_not_resolve_is_refused_when_the_route_is_saved(gateway, upstreams, mlflow):
    missing = f"prompts:/{_name('missing')}@production"
    response = _put(gateway, _name("r"), {"variants": [{**variant("a", upstreams["alpha"]), "prompt": missing}]})
    assert response.status_code == 422 and missing in response.json()["error"]["message"], response.text
    assert response.json()["error"]["param"] == "variants.0.prompt"  # the field, as a platform file's line names it
    # A registered template with a variable the gateway cannot fill is refused the same way.
    name = _name("holes")
    mlflow.register_prompt(name, "Answer from {{context}}.")
    ref = f"prompts:/{name}/1"
    response = _put(gateway, _name("r"), {"variants": [variant("a", upstreams["alpha"])], "rag": {"template": ref}})
    assert response.status_code == 422, response.text
    assert ref in response.json()["error"]["message"] and "{{context}}" in response.json()["error"]["message"]


def test_an_alias_move_changes_the_served_prompt_without_a_restart(gateway, upstreams, mlflow, key):
    name = _name("persona")
    mlflow.register_prompt(name, "You are Alpha.")
    mlflow.register_prompt(name, "You are Beta.")
    mlflow.set_prompt_alias(name, "production", 1)
    route = gateway.put_route(variants=[{**variant("a", upstreams["alpha"]), "prompt": f"prompts:/{name}@production"}])
    with gateway.client(key) as client:
        response = client.post("/v1/chat/completions", json=chat_body(route, "hi"))
        assert response.status_code == 200, response.text
        assert upstreams["alpha"].stats.requests[-1]["messages"][0] == {"role": "system", "content": "You are Alpha."}
        record = _record(gateway, response.headers["x-request-id"])
        assert (record["prompt_name"], record["prompt_version"]) == (name, "1")

        mlflow.set_prompt_alias(name, "production", 2)
        moved, deadline = time.monotonic(), time.monotonic() + 10 * TTL_S + 5
        while time.monotonic() < deadline:
            response = client.post("/v1/chat/completions", json=chat_body(route, "hi"))
            if upstreams["alpha"].stats.requests[-1]["messages"][0]["content"] == "You are Beta.":
                break
            time.sleep(TTL_S / 5)
        else:
            raise AssertionError("the alias move was not followed")
        assert time.monotonic() - moved < 4 * TTL_S + 3
        assert _record(gateway, response.headers["x-request-id"])["prompt_version"] == "2"

        # The alias disappears: a clear 503 and a metric, never the prompt's old text or a template with holes.
        mlflow.delete_prompt_alias(name, "production")
        deadline = time.monotonic() + 10 * TTL_S + 5
        while (response := client.post("/v1/chat/completions", json=chat_body(route, "hi"))).status_code == 200:
            assert time.monotonic() < deadline, "the vanished alias kept serving"
            time.sleep(TTL_S / 5)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "prompt_unavailable" and name in response.json()["error"]["message"]
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert f'llmops_gateway_prompt_errors_total{{reason="not_found",route="{route}"}}' in metrics


def test_a_registered_rag_template_and_two_prompt_versions_as_variants(gateway, upstreams, mlflow, key, retriever):
    name = _name("rag")
    system, user = "Answer from the context. v{n}", "Context:\n{{sources}}\n\nQuestion: {{question}}"
    for n in (1, 2):
        mlflow.register_prompt(
            name, [{"role": "system", "content": system.format(n=n)}, {"role": "user", "content": user}]
        )
    mlflow.set_prompt_alias(name, "production", 1)
    route = gateway.put_route(
        variants=[
            variant("v1", upstreams["alpha"], model="same-model", weight=1),
            {**variant("v2", upstreams["beta"], model="same-model", weight=1), "prompt": f"prompts:/{name}/2"},
        ],
        rag={"collection": "handbook", "template": f"prompts:/{name}@production"},
    )
    seen = set()
    with gateway.client(key) as client:
        for i in range(12):
            response = client.post(
                "/v1/chat/completions", json=chat_body(route, "Who keeps the lighthouse?", user=f"u{i}")
            )
            assert response.status_code == 200, response.text
            record = _record(gateway, response.headers["x-request-id"])
            seen.add((response.headers["x-llmops-variant"], record["prompt_version"]))
    assert seen == {("v1", "1"), ("v2", "2")}
    messages = upstreams["beta"].stats.requests[-1]["messages"]
    assert messages == [
        {"role": "system", "content": "Answer from the context. v2"},
        {
            "role": "user",
            "content": "Context:\n[1] The lighthouse keeper is Ada Quill.\n\nQuestion: Who keeps the lighthouse?",
        },
    ]


def test_while_mlflow_is_down_the_last_version_keeps_serving(gateway, upstreams, mlflow, key, outage):
    name = _name("steady")
    mlflow.register_prompt(name, "You are steady.")
    mlflow.set_prompt_alias(name, "production", 1)
    route = gateway.put_route(variants=[{**variant("a", upstreams["alpha"]), "prompt": f"prompts:/{name}@production"}])
    with outage.down_for():
        with gateway.client(key) as client:
            for _ in range(3):  # across several refresh periods, each failing to reach MLflow
                response = client.post("/v1/chat/completions", json=chat_body(route, "hi"))
                assert response.status_code == 200, response.text
                assert upstreams["alpha"].stats.requests[-1]["messages"][0]["content"] == "You are steady."
                time.sleep(TTL_S)
        deadline = time.monotonic() + 15  # a loaded machine may run the refresh loop late
        while "serving the last version" not in gateway.logs() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "serving the last version" in gateway.logs()  # the refreshes did fail meanwhile
        # Saving a route that names a prompt needs the registry: refused as unavailable, not as a bad reference.
        response = _put(
            gateway, _name("r"), {"variants": [{**variant("a", upstreams["alpha"]), "prompt": f"prompts:/{name}/1"}]}
        )
        assert response.status_code == 503 and response.json()["error"]["code"] == "prompt_registry_unavailable"


def test_spend_is_reported_by_prompt_version(gateway, upstreams, mlflow):
    name = _name("persona")
    mlflow.register_prompt(name, "You are Alpha.")
    mlflow.register_prompt(name, "You are Beta.")
    routes = [
        gateway.put_route(variants=[{**variant("a", upstreams["alpha"]), "prompt": f"prompts:/{name}/{version}"}])
        for version in (1, 2)
    ] + [gateway.put_route(variants=[variant("a", upstreams["alpha"])])]  # no prompt
    key_id, key = gateway.create_key()
    with gateway.client(key) as client:
        for route, times in zip(routes, (2, 1, 1), strict=True):
            for _ in range(times):
                assert client.post("/v1/chat/completions", json=chat_body(route, "hi")).status_code == 200
    report = wait_spend(gateway, 4, key=key_id, by="prompt_version")
    assert {g["group"]: g["requests"] for g in report["groups"]} == {f"{name}/1": 2, f"{name}/2": 1, "-": 1}
