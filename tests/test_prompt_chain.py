"""Prompts across the CLI, MLflow and the gateway: ``llmops prompts`` validates and versions templates, the built-ins
are seeded once, and a route's chain packaged as a pyfunc model sends the model exactly what the gateway sends, to
the adapter version it was packaged with."""

import json
import uuid

import pytest
from typer.testing import CliRunner

from llmops_cli import chain_model, packaging, prompt_registry
from llmops_cli.main import app
from llmops_common.contracts import prompts as contract
from llmops_common.contracts.adapters import MODEL_VERSION_HEADER, served_name
from llmops_testkit.fake_retriever import FakeRetriever
from llmops_testkit.gateway import chat_body, variant

CHUNKS = ["Ada Quill keeps the lighthouse on Gull Rock.  She lit it first in 1911.", "Tides turn at noon."]


@pytest.fixture(scope="module")
def retriever():
    fake = FakeRetriever(CHUNKS).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(make_gateway, llmops_state_dir, mlflow_server, retriever):
    return make_gateway(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'chain-{uuid.uuid4().hex[:6]}.db'}",
        GATEWAY_MLFLOW_URL=mlflow_server.url,
        **retriever.gateway_env(),
    )


def cli(*args: str, env: dict[str, str]):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **env}, catch_exceptions=False)


def test_push_validates_and_versions_and_aliases(mlflow_server, tmp_path):
    env, name = {"LLMOPS_MLFLOW_URL": mlflow_server.url}, f"support-{uuid.uuid4().hex[:6]}"
    bad = cli("prompts", "push", name, "--template", "Answer from {{context}}: {{question}}", env=env)
    assert bad.exit_code == 1 and "unknown variable {{context}}" in bad.output
    chat = tmp_path / "chat.json"
    chat.write_text(
        json.dumps(
            [{"role": "system", "content": "Sources:\n{{sources}}"}, {"role": "user", "content": "{{question}}"}]
        )
    )
    first = cli("prompts", "push", name, "--file", str(chat), "--alias", "production", "--json", env=env)
    again = cli("prompts", "push", name, "--file", str(chat), "--json", env=env)
    assert json.loads(first.stdout)["version"] == "1" and json.loads(first.stdout)["created"] is True
    assert json.loads(again.stdout) == {"name": name, "version": "1", "created": False, "alias": None}
    cli("prompts", "push", name, "--template", "Sources:\n{{sources}}\nBe brief.", env=env)
    assert cli("prompts", "alias", name, "production", "2", env=env).exit_code == 0
    shown = json.loads(cli("prompts", "show", f"prompts:/{name}@production", "--json", env=env).stdout)
    assert (shown["version"], shown["aliases"], shown["template"]) == (
        "2",
        ["production"],
        "Sources:\n{{sources}}\nBe brief.",
    )
    listed = {p["name"]: p for p in json.loads(cli("prompts", "list", "--json", env=env).stdout)}
    assert listed[name] == {"name": name, "latest": "2", "aliases": ["production->2"]}


def test_seeding_the_built_ins_is_idempotent(mlflow_server):
    first, second = prompt_registry.seed_builtins(mlflow_server.url), prompt_registry.seed_builtins(mlflow_server.url)
    assert all(line.endswith("(unchanged)") for line in second) and len(first) == len(contract.BUILTIN)
    mlflow = mlflow_server.client()
    for builtin, texts in contract.BUILTIN.items():
        name = contract.seeded_name(builtin)
        assert [v.version for v in prompt_registry.versions(mlflow, name)] == [1]
        parts = contract.parts(mlflow.get_prompt_version_by_alias(name, contract.SEEDED_ALIAS).template, rag=True)
        assert (parts.system, parts.user or "{question}") == (texts["system"], texts["user"])


def test_the_packaged_chain_sends_what_the_gateway_sends(gateway, upstreams, mlflow_server, retriever):
    mlflow, name = mlflow_server.client(), f"rag-{uuid.uuid4().hex[:6]}"
    mlflow.register_prompt(
        name,
        [
            {"role": "system", "content": "Answer from the context only."},
            {"role": "user", "content": "Context:\n{{sources}}\n\nQ: {{question}} (cite [n])"},
        ],
    )
    mlflow.set_prompt_alias(name, "production", 1)
    persona = f"persona-{uuid.uuid4().hex[:6]}"
    mlflow.register_prompt(persona, "You are terse.")
    rag_route = gateway.put_route(
        variants=[variant("a", upstreams["alpha"])],
        rag={"collection": "handbook", "top_k": 2, "template": f"prompts:/{name}@production"},
    )
    plain_route = gateway.put_route(variants=[{**variant("a", upstreams["alpha"]), "prompt": f"prompts:/{persona}/1"}])
    messages = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Who keeps the lighthouse?"}]
    key = gateway.create_key()[1]
    sent_by_gateway = {}
    with gateway.client(key) as client:
        for route in (rag_route, plain_route):
            assert client.post("/v1/chat/completions", json=chat_body(route, messages=messages)).status_code == 200
            sent_by_gateway[route] = upstreams["alpha"].stats.requests[-1]["messages"]

    import mlflow as tracking

    tracking.set_tracking_uri(mlflow_server.url)
    for route in (rag_route, plain_route):
        with gateway.admin() as admin:
            spec = admin.get(f"/admin/routes/{route}").json()
        chain = packaging.chain_of(mlflow, spec, retriever_url=retriever.url)
        logged = packaging.log_chain(chain, experiment="chain-tests")
        model = tracking.pyfunc.load_model(logged["model_uri"])
        answers = model.predict([{"messages": messages}])
        assert len(answers) == 1 and isinstance(answers[0], str)  # the fake upstream's answer
        assert upstreams["alpha"].stats.requests[-1]["messages"] == sent_by_gateway[route]
        assert upstreams["alpha"].stats.requests[-1]["model"] == chain["model"]
    assert logged["prompts"] == [f"prompts:/{persona}/1"] and chain["prompt_plain"]["version"] == "1"
    # Any OpenAI-compatible endpoint: the base URL and key given when the model is loaded.
    elsewhere = tracking.pyfunc.load_model(logged["model_uri"], model_config={"base_url": upstreams["beta"].base_url})
    elsewhere.predict([{"messages": messages}])
    assert upstreams["beta"].stats.requests[-1]["messages"] == sent_by_gateway[plain_route]


def test_routes_package_registers_the_chain_and_refuses_another_adapter_version(
    gateway, upstreams, mlflow_server, tmp_path
):
    """``llmops routes package --register``: the chain records the version behind the adapter alias; once the alias
    has moved, the inference service names another version and the packaged chain refuses (or, asked to, warns)."""
    adapter, alpha = f"bot-{uuid.uuid4().hex[:6]}", upstreams["alpha"]
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    first = mlflow_server.register_adapter(adapter, tmp_path / "adapter", alias="champion")
    route = gateway.put_route(variants=[variant("tuned", alpha, model=served_name(adapter, "champion"))])
    env = {
        "LLMOPS_GATEWAY_URL": gateway.url,
        "LLMOPS_ADMIN_TOKEN": gateway.admin_token,
        "LLMOPS_MLFLOW_URL": mlflow_server.url,
    }
    result = cli("routes", "package", route, "--register", f"{route}-chain", "--json", env=env)
    assert result.exit_code == 0, result.output
    logged = json.loads(result.stdout)  # MLflow's own run URL lines go to stderr
    assert logged["registered_version"] == "1" and logged["chain"]["model_version"] == first
    assert chain_model.MODEL_VERSION_HEADER == MODEL_VERSION_HEADER

    import mlflow as tracking

    tracking.set_tracking_uri(mlflow_server.url)
    model = tracking.pyfunc.load_model(f"models:/{route}-chain/1")
    rows = [{"messages": [{"role": "user", "content": "hi"}]}]
    alpha.behaviour.model_version = first  # the inference service names the version that answered
    assert len(model.predict(rows)) == 1
    assert alpha.stats.requests[-1]["model"] == served_name(adapter, "champion")

    second = mlflow_server.register_adapter(adapter, tmp_path / "adapter", alias="champion")
    alpha.behaviour.model_version = second  # as served once the inference service has synced the moved alias
    with pytest.raises(
        RuntimeError, match=f"registry version {second}, but this chain was packaged with version {first}"
    ):
        model.predict(rows)
    lenient = tracking.pyfunc.load_model(f"models:/{route}-chain/1", model_config={"on_version_mismatch": "warn"})
    with pytest.warns(UserWarning, match=f"packaged with version {first}"):
        assert len(lenient.predict(rows)) == 1
