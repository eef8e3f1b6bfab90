"""The chart carries the platform file (`llmops apply`) as a ConfigMap applied by a post-install/post-upgrade Job,
for the values of each environment (dev, staging, prod), each with its own MLflow; the file reaches the Job as the CLI
reads it."""

import subprocess
import sys
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from llmops_cli.platform.schema import parse
from llmops_cli.platform.yamlfile import YamlDocument

CHART = Path(__file__).resolve().parents[2] / "deploy/helm/llmops"
SECRETS = {"existingSecret": "llmops-credentials"}
PLATFORM_FILE = """\
apiVersion: llmops/v1
routes:
  support-bot:
    variants:
      - {name: base, upstream: "http://demo-llmops-inference:8002/v1", model: smollm2-135m-instruct}
keys:
  support-frontend: {limits: {rpm: 600}}
retraining:
  support-bot: {model_name: support-bot, champion: base}
"""


def render(values: dict) -> list[dict]:
    manifests = helm.Chart.load(CHART).render(values, name="demo", namespace="llm", is_install=True)
    return [d for p, t in sorted(manifests.items()) if not p.endswith("NOTES.txt") for d in yaml.safe_load_all(t) if d]


def named(docs: list[dict], kind: str, component: str) -> list[dict]:
    return [
        d for d in docs if d["kind"] == kind and d["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_each_environment_applies_the_same_file_after_install_and_upgrade(environment):
    values = yaml.safe_load((CHART / f"values-{environment}.yaml").read_text())
    values["secrets"] = SECRETS
    values["platformConfig"]["file"] = PLATFORM_FILE  # helm --set-file platformConfig.file=platform.yaml
    docs = render(values)
    (config,) = named(docs, "ConfigMap", "platform-config")
    (job,) = named(docs, "Job", "platform-config")
    assert config["data"]["platform.yaml"] == PLATFORM_FILE  # as written: errors name the file's own lines
    assert parse(YamlDocument("platform.yaml", yaml.safe_load(PLATFORM_FILE), None)).routes["support-bot"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    command = container["command"] + container.get("args", [])
    assert command[:4] == ["python", "-m", "llmops_cli.platform", "apply"]
    assert ("--prune" in command) == (environment != "prod")  # prod prunes only by a reviewed hand
    env = {e["name"]: e for e in container["env"]}
    assert env["LLMOPS_GATEWAY_URL"]["value"] == "http://demo-llmops-gateway:8000"
    assert env["LLMOPS_FEEDBACK_URL"]["value"] == "http://demo-llmops-feedback:8004"
    assert env["LLMOPS_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "llmops-credentials",
        "key": "admin-token",
    }
    volume = job["spec"]["template"]["spec"]["volumes"][0]
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    for doc in (config, job):
        kubernetes_validate.validate(doc, latest_version(), strict=True)

    # Its own MLflow: every service of the environment uses the URL its values name (`llmops promote` moves models
    # and prompts between them), and no MLflow server is deployed beside it.
    mlflow = f"http://mlflow.{environment}.example:5000"
    assert values["mlflow"]["external"]["url"] == mlflow
    settings = {"gateway": "GATEWAY_MLFLOW_URL", "feedback": "FEEDBACK_MLFLOW_TRACKING_URI"}
    settings |= {"inference": "INFERENCE_MLFLOW_TRACKING_URI", "trainer": "TRAINER_MLFLOW_TRACKING_URI"}
    for component, setting in settings.items():
        (service_config,) = named(docs, "ConfigMap", component)
        assert service_config["data"][setting] == mlflow, component
    assert not named(docs, "Deployment", "mlflow")


def test_the_file_as_values_and_the_network_path_of_the_job():
    file = yaml.safe_load(PLATFORM_FILE)
    del file["apiVersion"]  # defaulted by the chart
    values = {
        "secrets": SECRETS,
        "platformConfig": {"enabled": True, "file": file},
        "networkPolicy": {"gatewayFrom": [{"namespaceSelector": {"matchLabels": {"ingress": "yes"}}}]},
    }
    docs = render(values)
    (config,) = named(docs, "ConfigMap", "platform-config")
    assert yaml.safe_load(config["data"]["platform.yaml"]) == {"apiVersion": "llmops/v1", **file}
    job_pod = {"app.kubernetes.io/name": "llmops", "app.kubernetes.io/instance": "demo"}
    job_pod["app.kubernetes.io/component"] = "platform-config"
    for target in ("gateway", "feedback"):
        (policy,) = named(docs, "NetworkPolicy", target)
        peers = [p for rule in policy["spec"]["ingress"] for p in rule["from"]]
        assert {"podSelector": {"matchLabels": job_pod}} in peers, target
    assert not named(render({"secrets": SECRETS}), "Job", "platform-config")  # off by default


def test_a_bad_values_file_section_fails_the_install():
    values = {"secrets": SECRETS, "platformConfig": {"enabled": True, "file": {"rotues": {}}}}
    with pytest.raises(Exception, match="rotues"):
        render(values)


def test_helm_lint_strict_passes_with_the_prod_values():
    values = {**yaml.safe_load((CHART / "values-prod.yaml").read_text()), "secrets": SECRETS}
    values["platformConfig"]["file"] = PLATFORM_FILE
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{latest_version()}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], report


def test_the_jobs_command_needs_nothing_the_gateway_image_lacks():
    """The gateway image installs the CLI without its dependencies (services/gateway/Dockerfile): the platform
    commands must import none of the whole CLI's heavy ones (MLflow, torch, matplotlib, the model preparation)."""
    probe = "import sys, llmops_cli.platform.__main__\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    loaded = set(
        subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
    )
    assert {"typer", "rich", "yaml", "httpx"} <= loaded
    assert not loaded & {"mlflow", "torch", "matplotlib", "llmops_models", "transformers"}
    dockerfile = (CHART.parents[2] / "services/gateway/Dockerfile").read_text()
    assert "pip install --no-deps ./libs/cli" in dockerfile and "typer rich pyyaml" in dockerfile
