"""``llmops promote`` between two real MLflow servers (staging and prod): the version's artifacts are copied and the
alias moved; promoting again does nothing; an older version is refused where the target serves a newer one."""

import json

import pytest
from mlflow.artifacts import download_artifacts
from typer.testing import CliRunner

from llmops_cli.main import app
from llmops_common.contracts.adapters import ADAPTER_TAG
from llmops_testkit.mlflow_server import MlflowServer


@pytest.fixture(scope="module")
def registries(request, llmops_state_dir):
    """The session's MLflow as staging and a second server as prod, starting side by side (spawned here, not in a
    thread: a server dies with the thread that spawned it)."""
    prod = MlflowServer(llmops_state_dir / "mlflow-prod").start(wait=False)
    staging = request.getfixturevalue("mlflow_server")
    yield staging, prod.wait_ready()
    prod.stop()


def _adapter(path, marker: str):
    path.mkdir()
    (path / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA", "marker": marker}))
    (path / "adapter_model.safetensors").write_bytes(marker.encode() * 64)
    return path


def test_promote_a_model_and_a_prompt_between_two_registries(registries, tmp_path):
    staging, prod = registries
    environments = tmp_path / "environments.yaml"
    environments.write_text(f"environments:\n  staging: {{mlflow: {staging.url}}}\n  prod: {{mlflow: {prod.url}}}\n")
    # MLflow's retry settings here too: the runner restores them after each command (the CLI only sets defaults).
    env = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
    runner = CliRunner(env={"LLMOPS_ENVIRONMENTS": str(environments), "COLUMNS": "200", **env})
    name = f"support-bot-{tmp_path.name[-6:]}".replace("_", "-")

    def promote(*args: str):
        return runner.invoke(app, ["promote", name, "--from", "staging", "--to", "prod", *args])

    first = staging.register_adapter(name, _adapter(tmp_path / "v1", "one"), alias="champion")
    result = promote()
    assert result.exit_code == 0, result.output
    target = prod.client().get_model_version_by_alias(name, "champion")
    assert target.tags["llmops.origin.version"] == first and target.tags["llmops.origin.registry"] == staging.url
    assert prod.client().get_registered_model(name).tags[ADAPTER_TAG]  # the inference service's sync finds it
    copied = download_artifacts(artifact_uri=target.source, dst_path=str(tmp_path / "got"), tracking_uri=prod.url)
    assert json.loads((tmp_path / "got" / "model" / "adapter_config.json").read_text())["marker"] == "one", copied

    again = promote()
    assert again.exit_code == 0 and "already serves" in again.output
    assert len(prod.client().search_model_versions(f"name='{name}'")) == 1

    second = staging.register_adapter(name, _adapter(tmp_path / "v2", "two"), alias="champion")
    assert promote().exit_code == 0
    assert prod.client().get_model_version_by_alias(name, "champion").tags["llmops.origin.version"] == second
    older = promote("--version", first)
    assert older.exit_code == 1 and "newer" in older.output, older.output
    assert prod.client().get_model_version_by_alias(name, "champion").tags["llmops.origin.version"] == second
    assert promote("--version", first, "--force").exit_code == 0

    # Prompts: the template moves with its origin; the target's alias follows.
    staging_client, template = staging.client(), "Answer from these sources only:\n{{sources}}"
    version = staging_client.register_prompt(f"{name}-prompt", template)
    staging_client.set_prompt_alias(f"{name}-prompt", "champion", version.version)
    result = runner.invoke(app, ["promote", f"{name}-prompt", "--prompt", "--from", "staging", "--to", "prod"])
    assert result.exit_code == 0, result.output
    assert prod.client().get_prompt_version_by_alias(f"{name}-prompt", "champion").template == template
    # A template the gateway cannot fill (MLflow takes any text) is refused, as `llmops prompts push` refuses it.
    holes = staging_client.register_prompt(f"{name}-prompt", "Answer from {{context}}: {{question}}")
    refused = runner.invoke(
        app,
        ["promote", f"{name}-prompt", "--prompt", "--version", str(holes.version), "--from", "staging", "--to", "prod"],
    )
    assert refused.exit_code == 1 and "unknown variable {{context}}" in refused.output, refused.output
    assert len(prod.client().search_prompt_versions(f"{name}-prompt")) == 1

    unknown = runner.invoke(app, ["promote", name, "--from", "nowhere", "--to", "prod"])
    assert unknown.exit_code == 1 and "nowhere" in unknown.output
