"""The Helm chart (deploy/helm/llmops), checked with real Helm and real Kubernetes schemas; no cluster needed.

Helm v4 through PyPI's helm-python-sdk renders and lints the chart for the default values and for values-gpu.yaml;
kubernetes-validate checks every manifest against the API schemas of the chart's oldest supported and the newest
Kubernetes version it ships. What no schema knows is checked against the platform's own code: each service's
settings load from exactly the environment its pod would get (ConfigMap, Secret, $(VAR) expansion) and every name
in it is a real settings field; every URL a service is given points at a Service of the release on the right port;
every probe asks a path the service's app really serves on the port it really listens on; GPUs, secrets,
external services, security contexts, network policies and the Prometheus Operator objects.
"""

import http.client
import importlib
import json
import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from packaging.version import Version

from llmops_common.contracts.serving import INFERENCE_TOKEN_ENV

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/llmops"
GPU_VALUES = CHART / "values-gpu.yaml"
# The chart's kubeVersion floor and the newest Kubernetes whose schemas kubernetes-validate ships.
KUBE_VERSIONS = ("1.27.0", latest_version())

SECRETS = {
    "adminToken": "admin-token-0123456789abcdef",
    "keySecret": "key-secret-0123456789abcdef",
    "ingestToken": "ingest-token-0123456789abcdef",
    "retrieverReadToken": "read-token-0123456789abcdef",
    "servingToken": "serving-token-0123456789abcdef",
    "postgresPassword": "pg-password-0123456789",
    "redisPassword": "redis-password-0123456789",
    "qdrantApiKey": "qdrant-key-0123456789abcdef",
}
DEFAULT_VALUES = {"secrets": SECRETS}

# component label -> (package, settings class, env prefix): the platform's own containers.
SERVICES = {
    "gateway": ("llmops_gateway", "GatewaySettings", "GATEWAY_"),
    "retriever": ("llmops_retriever", "RetrieverSettings", "RETRIEVER_"),
    "inference": ("llmops_inference", "InferenceSettings", "INFERENCE_"),
    "feedback": ("llmops_feedback", "FeedbackSettings", "FEEDBACK_"),
    "trainer": ("llmops_trainer", "TrainerSettings", "TRAINER_"),
    "trainer-worker": ("llmops_trainer", "TrainerSettings", "TRAINER_"),
    "batch-worker": ("llmops_gateway", "GatewaySettings", "GATEWAY_"),
    "evaluation-worker": ("llmops_feedback", "FeedbackSettings", "FEEDBACK_"),
}
# Settings the chart wires itself, so a component's `config` values may not name them (values.schema.json leaves them
# out): listening sockets, credentials, the retriever's store, and inference's settings that have their own values
# (inference.vllm, .lora, .adapters).
COMMON_OWNED = {"host", "port", "dev_mode"}
INFERENCE_VALUES = {
    *("model", "served_model_name", "dtype", "max_model_len", "gpu_memory_utilization", "tensor_parallel_size"),
    *("quantization", "enforce_eager", "extra_args", "enable_lora", "max_loras", "max_lora_rank", "max_cpu_loras"),
    *("sync_interval_s", "ready_without_registry"),
}
# The batch workers' engine has values of its own (batch.worker.engine), set on the worker pods only: not the gateway's.
BATCH_ENGINE_VALUES = {
    *("batch_engine", "batch_engine_model", "batch_engine_served_names", "batch_engine_chunk_lines"),
    "batch_engine_args",
}
OWNED = {
    "gateway": {
        *("admin_token", "key_secret", "key_secrets_previous", "feedback_token", "feedback_admin_token"),
        "retriever_token",
        *("trainer_admin_token", "retriever_admin_token", "database_url", "redis_url"),
        *("batch_token", "batch_gateway_url", "files_url", "batch_worker_host", "batch_worker_port"),
        *BATCH_ENGINE_VALUES,
    },
    "retriever": {"admin_token", "read_token", "qdrant_api_key", "store", "qdrant_url", "qdrant_path"},
    # The serving tokens come from the Secret; /v1 is always closed here, so open_serving is the chart's too.
    "inference": {"admin_token", "vllm_api_key", "vllm_host", "vllm_port", *INFERENCE_VALUES}
    | {"serving_token", "serving_tokens_previous", "open_serving"},
    "trainer": {"admin_token", "feedback_token", "database_url", "redis_url", "worker_host", "worker_port"},
    # The closed loop's addresses are wired by the chart; it calls them with the platform's one admin token.
    "feedback": {"admin_token", "ingest_token", "database_url", "gateway_url", "mlflow_tracking_uri", "trainer_url"}
    | {"gateway_admin_token", "trainer_token", "inference_serving_token"}
    # Evaluation: the queue is the release's Redis, the workers listen where the chart says, the judge's gateway key
    # is a secret (feedback.extraEnv).
    | {"eval_redis_url", "eval_worker_host", "eval_worker_port", "eval_judge_key"},
}
# Env the pods get that are not settings: the chart's password variables (expanded into URLs) and library caches.
# INFERENCE_SERVING_TOKEN in the gateway: the inference service's serving token, which route variants name (api_key_env).
NON_SETTINGS_ENV = {"HOME", "HF_HOME", "HF_TOKEN", "LLMOPS_POSTGRES_PASSWORD", "LLMOPS_REDIS_PASSWORD"}
NON_SETTINGS_ENV |= {INFERENCE_TOKEN_ENV}
# OpenTelemetry's own variables (llmops_common.tracing), set with tracing.otlpEndpoint.
TRACING_ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"}

helm.disable_logging()  # lint logs every `required` it tolerates; the report is what the tests read


def render(values: dict) -> list[dict]:
    manifests = helm.Chart.load(CHART).render(values, name="demo", namespace="llm", is_install=True)
    return [
        doc
        for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def render_error(values: dict) -> str:
    with pytest.raises(helm.HelmError) as caught:
        render(values)
    return str(caught.value)


def find(docs: list[dict], kind: str, component: str | None = None) -> list[dict]:
    return [
        d
        for d in docs
        if d["kind"] == kind
        and (component is None or d["metadata"]["labels"].get("app.kubernetes.io/component") == component)
    ]


def one(docs: list[dict], kind: str, component: str) -> dict:
    (doc,) = find(docs, kind, component)
    return doc


def workloads(docs: list[dict]) -> list[dict]:
    return find(docs, "Deployment") + find(docs, "StatefulSet")


def component(doc: dict) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def settings_class(service: str):
    package, cls, _ = SERVICES[service]
    return getattr(importlib.import_module(f"{package}.settings"), cls)


def config_names(service: str) -> set[str]:
    return set(settings_class(service).model_fields) - COMMON_OWNED - OWNED[service]


@pytest.fixture(scope="module")
def default_docs() -> list[dict]:
    return render(DEFAULT_VALUES)


@pytest.fixture(scope="module")
def gpu_docs() -> list[dict]:
    return render(yaml.safe_load(GPU_VALUES.read_text()))


@pytest.fixture(scope="module", params=["default", "gpu"])
def docs(request, default_docs, gpu_docs) -> list[dict]:
    return {"default": default_docs, "gpu": gpu_docs}[request.param]


# --- what Kubernetes would put into a container's environment ---

_REFERENCE = re.compile(r"\$\((\w+)\)|\$\$")


def container_env(docs: list[dict], container: dict) -> dict[str, str]:
    """envFrom ConfigMaps, then env entries with secretKeyRef resolved (the rendered Secret's value, else a stand-in
    for an existing Secret; optional keys taken as absent) and $(VAR) expanded from the entries before, as the kubelet
    does."""
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in find(docs, "ConfigMap")}
    secrets = {d["metadata"]["name"]: d["stringData"] for d in find(docs, "Secret")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = _REFERENCE.sub(
                lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), entry["value"]
            )
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            if ref.get("optional") and ref["key"] not in secrets.get(ref["name"], {}):
                continue  # an optional key (a rotation's earlier secrets) is absent unless someone adds it
            stand_in = f"stand-in-{ref['key']}-0123456789"
            env[entry["name"]] = secrets.get(ref["name"], {}).get(ref["key"], stand_in)
    return env


@contextmanager
def environment(env: dict[str, str], prefix: str):
    """Exactly ``env`` for the service's prefix: variables of the test process with that prefix are hidden."""
    with mock.patch.dict(os.environ, {}, clear=False):
        for name in [n for n in os.environ if n.startswith(prefix)]:
            del os.environ[name]
        os.environ.update(env)
        yield


def service_settings(docs: list[dict], workload: dict):
    service = component(workload)
    container = workload["spec"]["template"]["spec"]["containers"][0]
    env = container_env(docs, container)
    with environment(env, SERVICES[service][2]):
        return settings_class(service)(), env, container


def our_workloads(docs: list[dict]) -> list[dict]:
    return [w for w in workloads(docs) if component(w) in SERVICES]


# --- Helm itself ---


@pytest.mark.parametrize("values_file", [None, GPU_VALUES], ids=["default", "gpu"])
def test_helm_lint_strict_passes(values_file):
    values = yaml.safe_load(values_file.read_text()) if values_file else DEFAULT_VALUES
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSIONS[-1]}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # warnings and errors (infos: "icon")
    assert not problems and not report["errors"], report


def test_every_manifest_is_valid_kubernetes(docs):
    assert Version(KUBE_VERSIONS[-1]) >= Version("1.33"), "kubernetes-validate should ship a current Kubernetes"
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: their own test below
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} on {version}: {exc.path}: {exc.message}")


def test_default_values_deploy_everything(default_docs):
    deployments = {component(d) for d in find(default_docs, "Deployment")}
    assert deployments == {
        *("gateway", "retriever", "inference", "feedback", "trainer", "trainer-worker", "batch-worker"),
        *("evaluation-worker", "mlflow"),
    }
    assert {component(d) for d in find(default_docs, "StatefulSet")} == {"postgresql", "redis", "qdrant"}
    services = {component(s) for s in find(default_docs, "Service")}
    assert services == deployments | {"postgresql", "redis", "qdrant"}
    assert {component(h) for h in find(default_docs, "HorizontalPodAutoscaler")} == {"gateway", "retriever"}
    assert not find(default_docs, "ServiceMonitor") and not find(default_docs, "PrometheusRule")


def test_a_gateway_alone():
    """Everything but the gateway switched off: it logs requests locally, has no RAG, needs fewer secrets."""
    off = {"enabled": False}
    values = {"secrets": {k: SECRETS[k] for k in ("adminToken", "keySecret", "postgresPassword", "redisPassword")}}
    docs = render(
        {**values, "retriever": off, "inference": off, "feedback": off, "trainer": off, "mlflow": off, "batch": off}
    )
    assert {component(w) for w in workloads(docs)} == {"gateway", "postgresql", "redis"}
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSIONS[-1], strict=True)
    gateway, _, _ = service_settings(docs, one(docs, "Deployment", "gateway"))
    assert gateway.request_log_sink == "jsonl" and gateway.feedback_url is None and gateway.retriever_url is None
    (secret,) = find(docs, "Secret")
    assert set(secret["stringData"]) == {"admin-token", "key-secret", "postgres-password", "redis-password"}


def test_services_and_autoscalers_select_real_pods(docs):
    pods = {component(w): w for w in workloads(docs)}
    for service in find(docs, "Service"):
        target = pods[component(service)]["spec"]["template"]
        assert service["spec"]["selector"].items() <= target["metadata"]["labels"].items()
        port_names = {p["name"] for c in target["spec"]["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names, service["metadata"]["name"]
    for hpa in find(docs, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] == pods[component(hpa)]["metadata"]["name"]
        assert "replicas" not in pods[component(hpa)]["spec"], "the HPA owns the replica count"
    for pdb in find(docs, "PodDisruptionBudget"):
        labels = pods[component(pdb)]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


# --- the services get the settings they expect ---


def test_tracing_is_off_by_default_and_on_for_every_service_with_an_endpoint(default_docs):
    def tracing_env(docs) -> dict[str, dict[str, str]]:
        return {
            component(w): {
                k: v
                for k, v in container_env(docs, w["spec"]["template"]["spec"]["containers"][0]).items()
                if k in TRACING_ENV
            }
            for w in our_workloads(docs)
        }

    assert not any(tracing_env(default_docs).values())
    values = {**DEFAULT_VALUES, "tracing": {"otlpEndpoint": "http://collector.obs:4318", "sampleRatio": 0.25}}
    traced = tracing_env(render(values))
    assert traced and all(
        env
        == {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.obs:4318",
            "OTEL_SERVICE_NAME": f"llmops-{name}",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        }
        for name, env in traced.items()
    )


def test_settings_load_from_the_pods_environment(docs):
    """Each service's settings class accepts its pod's environment outside dev mode (its validators and secret
    checks run), and every variable with the service's prefix, in the ConfigMap or the pod, is a real field."""
    for workload in our_workloads(docs):
        service = component(workload)
        settings, env, _ = service_settings(docs, workload)
        prefix = SERVICES[service][2]
        fields = {prefix + field.upper() for field in type(settings).model_fields}
        # env holds the ConfigMap's data (envFrom) and the pod's own entries.
        unknown = set(env) - fields - NON_SETTINGS_ENV - TRACING_ENV
        assert not unknown, f"{service}: not settings of the service: {sorted(unknown)}"
        assert not settings.dev_mode
        settings.admin_token_value()  # refuses missing, default or short secrets outside dev mode
        if service == "inference":  # /v1 closed: it refuses to start without a serving token
            assert settings.serving_tokens() == (env[INFERENCE_TOKEN_ENV],)


def test_the_schema_accepts_exactly_the_settings_config_may_set():
    """values.schema.json lists the fields each component's `config` may set, so a typo fails the install. A new
    setting must be added there (or to OWNED here, with the chart wiring it)."""
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]
    for service in ("gateway", "retriever", "inference", "feedback", "trainer"):
        config = schema[service]["properties"]["config"]
        assert config["additionalProperties"] is False
        assert set(config["properties"]) == config_names(service), service
    message = render_error({**DEFAULT_VALUES, "gateway": {"config": {"quota_failur_mode": "open"}}})
    assert "/gateway/config" in message and "quota_failur_mode" in message


def test_config_values_reach_the_settings():
    values = {
        **DEFAULT_VALUES,
        "gateway": {"config": {"quota_failure_mode": "open", "max_body_bytes": 8388608}},
        "trainer": {"config": {"base_models": {"tiny": "org/tiny-model"}}},
    }
    docs = render(values)
    gateway, _, _ = service_settings(docs, one(docs, "Deployment", "gateway"))
    assert gateway.quota_failure_mode == "open" and gateway.max_body_bytes == 8388608
    worker, _, _ = service_settings(docs, one(docs, "Deployment", "trainer-worker"))
    assert worker.base_models == {"tiny": "org/tiny-model"}


def test_every_url_points_at_a_service_of_the_release(docs):
    services = {s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]} for s in find(docs, "Service")}
    for workload in our_workloads(docs):
        settings, _, _ = service_settings(docs, workload)
        for field, value in settings.model_dump().items():
            if isinstance(value, str) and re.match(r"(https?|redis|postgresql(\+\w+)?)://", value):
                url = urlsplit(value)
                assert url.hostname in services, f"{component(workload)}.{field} = {value}"
                assert url.port in services[url.hostname], f"{component(workload)}.{field} = {value}"
    gateway, _, _ = service_settings(docs, one(docs, "Deployment", "gateway"))
    assert gateway.request_log_sink == "feedback" and gateway.feedback_url and gateway.retriever_url
    assert gateway.trainer_url and gateway.trainer_admin_token and gateway.mlflow_url  # the console's training page


@contextmanager
def quiet_logging():
    """create_app configures the root logger; give pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:], root.level = handlers, level


WORKER_HEALTH = {  # the workers' health servers: the module with their ``health_server(settings, port=)``
    "trainer-worker": "llmops_trainer.worker.health",
    "evaluation-worker": "llmops_feedback.evaluation.health",
}
WORKER_PORT = {
    "trainer-worker": "worker_port",
    "batch-worker": "batch_worker_port",
    "evaluation-worker": "eval_worker_port",
}


def served_paths(service: str, settings) -> set[str]:
    """The GET paths the service's real app answers (no lifespan runs: nothing is opened)."""
    if service == "batch-worker" or service in WORKER_HEALTH:
        if service == "batch-worker":
            from llmops_gateway.batches.worker.health import WorkerMetrics, health_server

            server = health_server(settings, WorkerMetrics(), port=0).start()
        else:
            server = importlib.import_module(WORKER_HEALTH[service]).health_server(settings, port=0).start()
        try:
            served = set()
            for path in ("/healthz", "/readyz", "/metrics"):
                conn = http.client.HTTPConnection(*server._server.server_address[:2], timeout=5)
                conn.request("GET", path)
                if conn.getresponse().status != 404:
                    served.add(path)
                conn.close()
            return served
        finally:
            server.stop()
    package = SERVICES[service][0]
    with quiet_logging():
        app = importlib.import_module(f"{package}.app").create_app(settings)
    app = getattr(app, "app", app)  # the gateway's ASGI front (POST completions only) wraps its FastAPI app
    return {route.path for route in app.routes if "GET" in getattr(route, "methods", ())}


def test_probes_ask_paths_the_services_serve_on_their_ports(docs):
    for workload in our_workloads(docs):
        service = component(workload)
        settings, _, container = service_settings(docs, workload)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        listen = getattr(settings, WORKER_PORT.get(service, "port"))
        assert ports["http"] == listen, f"{service} listens on {listen}"
        if service == "inference":
            assert ports["vllm-metrics"] == settings.vllm_port and settings.vllm_host == "0.0.0.0"
        served = served_paths(service, settings)
        probes = {kind: container[kind] for kind in ("livenessProbe", "readinessProbe", "startupProbe")}
        assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz", service
        for kind, probe in probes.items():
            assert probe["httpGet"]["port"] == "http", (service, kind)
            assert probe["httpGet"]["path"] in served, (service, kind, probe["httpGet"]["path"], served)
    mlflow = one(docs, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    from mlflow.server import app as mlflow_app

    mlflow_paths = {rule.rule for rule in mlflow_app.url_map.iter_rules()}
    assert {mlflow[k]["httpGet"]["path"] for k in ("livenessProbe", "readinessProbe")} <= mlflow_paths


# --- GPUs ---


def test_gpu_values_put_inference_and_training_on_gpus(gpu_docs, default_docs):
    for name in ("inference", "trainer-worker"):
        pod = one(gpu_docs, "Deployment", name)["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1, name
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}, name
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"], name
        shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
        assert shm["emptyDir"]["medium"] == "Memory"
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    inference = one(gpu_docs, "Deployment", "inference")["spec"]["template"]["spec"]
    assert re.search(r"/llmops-inference:", inference["containers"][0]["image"]), "the CUDA image"
    cache = next(v for v in inference["volumes"] if v["name"] == "model-cache")
    claim = cache["persistentVolumeClaim"]["claimName"]
    assert claim in {p["metadata"]["name"] for p in find(gpu_docs, "PersistentVolumeClaim")}
    settings, env, _ = service_settings(gpu_docs, one(gpu_docs, "Deployment", "inference"))
    assert settings.model == "Qwen/Qwen2.5-7B-Instruct" and settings.gpu_memory_utilization == 0.9
    assert settings.enforce_eager is False and settings.enable_lora and settings.max_lora_rank == 16
    assert env["HF_HOME"].startswith(cache_mount(inference))
    worker, _, _ = service_settings(gpu_docs, one(gpu_docs, "Deployment", "trainer-worker"))
    assert worker.device == "cuda" and settings.served_name() in worker.base_models
    # The defaults run anywhere: no GPU asked, the CPU image.
    for name in ("inference", "trainer-worker"):
        pod = one(default_docs, "Deployment", name)["spec"]["template"]["spec"]
        assert "nvidia.com/gpu" not in pod["containers"][0]["resources"].get("limits", {})
        assert "nodeSelector" not in pod
    cpu_image = one(default_docs, "Deployment", "inference")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert cpu_image.startswith("llmops-inference-cpu:")


def cache_mount(pod: dict) -> str:
    return next(m["mountPath"] for m in pod["containers"][0]["volumeMounts"] if m["name"] == "model-cache")


# --- batch workers on vLLM's offline engine ---


def batch_worker(docs: list[dict]) -> tuple[dict, dict]:
    """The batch worker's pod spec and its container."""
    pod = one(docs, "Deployment", "batch-worker")["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


def engine_values(**engine) -> dict:
    return {**DEFAULT_VALUES, "batch": {"worker": {"engine": {"kind": "vllm", "model": "org/model-7b", **engine}}}}


def batch_claims(docs: list[dict]) -> list[str]:
    return [c["metadata"]["name"] for c in find(docs, "PersistentVolumeClaim", "batch-worker")]


def test_batch_workers_send_lines_through_the_gateway_by_default(default_docs):
    pod, container = batch_worker(default_docs)
    env = container_env(default_docs, container)
    assert not [k for k in env if k.startswith("GATEWAY_BATCH_ENGINE")] and "HF_HOME" not in env
    settings, _, _ = service_settings(default_docs, one(default_docs, "Deployment", "batch-worker"))
    assert settings.batch_engine == "serving"
    assert container["image"].startswith("llmops-gateway:") and container["command"][0] == "python"
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {}) and "nodeSelector" not in pod
    assert not {"dshm", "model-cache"} & {v["name"] for v in pod["volumes"]}
    assert "strategy" not in one(default_docs, "Deployment", "batch-worker")["spec"]
    assert batch_claims(default_docs) == ["demo-llmops-files"]


def test_gpu_values_run_batches_on_the_served_model_with_a_gpu_of_their_own(gpu_docs):
    pod, container = batch_worker(gpu_docs)
    assert re.search(r"/llmops-gateway-vllm:", container["image"]), "the CUDA image with vLLM"
    assert container["command"] == ["python3", "-m", "llmops_gateway.batches.worker"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    # A vLLM process: gigabytes of host memory, /dev/shm in memory within the limit.
    requested = container["resources"]["requests"]["memory"]
    assert requested.endswith("Gi") and int(requested[:-2]) >= 16
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"} and mounts["dshm"] == "/dev/shm"
    claim = volumes["model-cache"]["persistentVolumeClaim"]["claimName"]
    assert claim == "demo-llmops-batch-models" and claim in batch_claims(gpu_docs)
    (models,) = [c for c in find(gpu_docs, "PersistentVolumeClaim") if c["metadata"]["name"] == claim]
    assert models["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert one(gpu_docs, "Deployment", "batch-worker")["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    # The engine stands for the model inference serves, under the name its routes use.
    worker, env, _ = service_settings(gpu_docs, one(gpu_docs, "Deployment", "batch-worker"))
    inference, _, _ = service_settings(gpu_docs, one(gpu_docs, "Deployment", "inference"))
    assert worker.batch_engine == "vllm" and worker.batch_engine_model == inference.model
    assert worker.batch_engine_served_names == [inference.served_name()]
    assert worker.batch_engine_chunk_lines == 64
    assert worker.batch_engine_args == {
        "dtype": "bfloat16",
        "max_model_len": 8192,
        "gpu_memory_utilization": 0.9,
        "enable_prefix_caching": True,
    }
    assert env["HF_HOME"].startswith(mounts["model-cache"] + "/")
    # The engine's settings are the workers' alone: the gateway's pods never see them.
    gateway, gateway_env, _ = service_settings(gpu_docs, one(gpu_docs, "Deployment", "gateway"))
    assert gateway.batch_engine == "serving" and not [k for k in gateway_env if k.startswith("GATEWAY_BATCH_ENGINE")]


def test_every_engine_setting_the_chart_owns_reaches_the_workers():
    """BATCH_ENGINE_VALUES leaves the engine's settings out of gateway.config: batch.worker.engine sets each."""
    docs = render(engine_values(servedNames=["m-7b", "m-7b-latest"], chunkLines=16, engineArgs={"max_model_len": 4096}))
    _, container = batch_worker(docs)
    env = container_env(docs, container)
    assert {k for k in env if k.startswith("GATEWAY_BATCH_ENGINE")} == {
        f"GATEWAY_{name.upper()}" for name in BATCH_ENGINE_VALUES
    }
    settings, _, _ = service_settings(docs, one(docs, "Deployment", "batch-worker"))
    assert (settings.batch_engine, settings.batch_engine_model) == ("vllm", "org/model-7b")
    assert settings.batch_engine_served_names == ["m-7b", "m-7b-latest"] and settings.batch_engine_chunk_lines == 16
    assert settings.batch_engine_args == {"max_model_len": 4096}
    assert "batch_engine" in render_error({**DEFAULT_VALUES, "gateway": {"config": {"batch_engine": "vllm"}}})


def test_engine_defaults_model_cache_and_workers_without_gpus():
    docs = render(engine_values())
    pod, container = batch_worker(docs)
    # Defaults: one GPU, an emptyDir model cache (no claim), the gateway's tag on the vllm image.
    assert container["image"] == "llmops-gateway-vllm:0.1.0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["model-cache"] and volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert batch_claims(docs) == ["demo-llmops-files"]
    settings, env, _ = service_settings(docs, one(docs, "Deployment", "batch-worker"))
    assert settings.batch_engine_served_names == [] and settings.batch_engine_args == {}
    assert "GATEWAY_BATCH_ENGINE_SERVED_NAMES" not in env  # the settings' default: the model's last path part
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSIONS[-1], strict=True)
    # An existing claim is mounted, none created; no GPUs: no GPU limit or GPU node scheduling; image values apply.
    values = engine_values(
        modelCache={"persistence": {"enabled": True, "existingClaim": "shared-models"}},
        gpu={"count": 0},
        image={"repository": "registry.example/gw-vllm-cpu", "tag": "cpu-1"},
    )
    docs = render(values)
    pod, container = batch_worker(docs)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model-cache"]["persistentVolumeClaim"]["claimName"] == "shared-models"
    assert batch_claims(docs) == ["demo-llmops-files"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"] and "nodeSelector" not in pod
    assert container["image"] == "registry.example/gw-vllm-cpu:cpu-1"
    # Kubernetes would expand $(VAR) in an env value: the chart escapes a value's dollar signs.
    docs = render(engine_values(model="/models/$(HOME)"))
    settings, _, _ = service_settings(docs, one(docs, "Deployment", "batch-worker"))
    assert settings.batch_engine_model == "/models/$(HOME)"


def test_the_schema_refuses_an_unknown_engine_and_vllm_without_a_model():
    from llmops_gateway.settings import BatchEngine, GatewaySettings

    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["batch"]["properties"]
    engine = schema["worker"]["properties"]["engine"]["properties"]
    assert engine["kind"]["enum"] == [e.value for e in BatchEngine]
    bounds = {type(m).__name__: m for m in GatewaySettings.model_fields["batch_engine_chunk_lines"].metadata}
    assert (engine["chunkLines"]["minimum"], engine["chunkLines"]["maximum"]) == (bounds["Ge"].ge, bounds["Le"].le)
    unknown = render_error(engine_values(kind="tgi"))
    assert "/batch/worker/engine/kind" in unknown and "must be one of 'serving', 'vllm'" in unknown
    assert "/batch/worker/engine/model" in render_error(engine_values(model=""))
    assert "missing property 'model'" in render_error(engine_values(model=None))  # null: Helm drops the default
    assert "/batch/worker/engine" in render_error(engine_values(chunkLines=0))
    assert "typo" in render_error(engine_values(typo=1))
    # serving needs no model.
    render({**DEFAULT_VALUES, "batch": {"worker": {"engine": {"kind": "serving"}}}})


# --- secrets ---


def test_render_fails_clearly_without_secrets():
    assert "secrets.adminToken is required" in render_error({})
    short = render_error({"secrets": {**SECRETS, "keySecret": "short"}})
    assert "secrets.keySecret must be at least 16 characters" in short
    url_unsafe = render_error({"secrets": {**SECRETS, "postgresPassword": "p@ss/word:0123456789"}})
    assert "secrets.postgresPassword may only contain" in url_unsafe


def test_existing_secret_replaces_the_charts_secret():
    docs = render({"secrets": {"existingSecret": "my-credentials"}})
    assert not find(docs, "Secret")
    refs = [
        e["valueFrom"]["secretKeyRef"]["name"]
        for w in workloads(docs)
        for c in w["spec"]["template"]["spec"]["containers"]
        for e in c.get("env", [])
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    ]
    assert refs and set(refs) == {"my-credentials"}
    mixed = render_error({"secrets": {"existingSecret": "my-credentials", "adminToken": SECRETS["adminToken"]}})
    assert "secrets.existingSecret is set" in mixed and "adminToken" in mixed


def test_default_secret_holds_what_the_pods_reference(default_docs):
    (secret,) = find(default_docs, "Secret")
    referenced = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for w in workloads(default_docs)
        for c in w["spec"]["template"]["spec"]["containers"]
        for e in c.get("env", [])
        if "valueFrom" in e and not e["valueFrom"]["secretKeyRef"].get("optional")
    }
    assert referenced == set(secret["stringData"])


def test_inference_is_closed_and_its_callers_hold_its_serving_token(docs):
    """One Secret key gives the serving token to inference (its /v1 answers only it), to the gateway (under the name
    route variants give in api_key_env) and to the feedback service (asking whether an adapter is served)."""

    def secret_key(workload: str, name: str) -> str:
        container = one(docs, "Deployment", workload)["spec"]["template"]["spec"]["containers"][0]
        (entry,) = [e for e in container["env"] if e["name"] == name]
        return entry["valueFrom"]["secretKeyRef"]["key"]

    assert secret_key("inference", INFERENCE_TOKEN_ENV) == "inference-serving-token"
    assert secret_key("gateway", INFERENCE_TOKEN_ENV) == "inference-serving-token"
    assert secret_key("feedback", "FEEDBACK_INFERENCE_SERVING_TOKEN") == "inference-serving-token"
    without = {k: v for k, v in SECRETS.items() if k != "servingToken"}
    assert "secrets.servingToken is required" in render_error({"secrets": without})


# --- external services ---

EXTERNAL = {
    "secrets": {k: v for k, v in SECRETS.items() if k not in ("postgresPassword", "redisPassword")},
    "postgresql": {
        "enabled": False,
        "external": {
            "gatewayUrl": "postgresql+asyncpg://gw:pw@db.example:5432/gateway",
            "feedbackUrl": "postgresql+asyncpg://fb:pw@db.example:5432/feedback",
            "trainerUrl": "postgresql+asyncpg://tr:pw@db.example:5432/trainer",
            "mlflowUrl": "postgresql://ml:pw@db.example:5432/mlflow",
        },
    },
    "redis": {"enabled": False, "external": {"url": "rediss://:pw@redis.example:6380/0"}},
    "qdrant": {"enabled": False, "external": {"url": "https://qdrant.example:6333"}},
    "mlflow": {"enabled": False, "external": {"url": "https://mlflow.example"}},
    "batch": {"filesUrl": "s3://llmops-files/prod"},  # files in an object store: no volume
}


def test_external_urls_replace_the_bundled_servers():
    docs = render(EXTERNAL)
    assert not find(docs, "StatefulSet")
    assert {component(d) for d in find(docs, "Deployment")} == set(SERVICES)
    assert not find(docs, "Service", "mlflow") and not find(docs, "PersistentVolumeClaim")
    gateway, _, _ = service_settings(docs, one(docs, "Deployment", "gateway"))
    assert gateway.database_url == EXTERNAL["postgresql"]["external"]["gatewayUrl"]
    assert gateway.redis_url == EXTERNAL["redis"]["external"]["url"]
    batch_worker, _, _ = service_settings(docs, one(docs, "Deployment", "batch-worker"))
    assert gateway.files_url == batch_worker.files_url == "s3://llmops-files/prod"
    retriever, _, _ = service_settings(docs, one(docs, "Deployment", "retriever"))
    assert retriever.qdrant_url == "https://qdrant.example:6333"
    for name in ("inference", "trainer", "trainer-worker"):
        settings, _, _ = service_settings(docs, one(docs, "Deployment", name))
        assert settings.mlflow_tracking_uri == "https://mlflow.example", name
    worker, _, _ = service_settings(docs, one(docs, "Deployment", "trainer-worker"))
    assert worker.database_url.startswith("postgresql+asyncpg://tr:") and worker.redis_url.startswith("rediss://")
    policies = {component(p) for p in find(docs, "NetworkPolicy")}
    assert not policies & {"postgresql", "redis", "qdrant", "mlflow"}


def test_external_servers_need_their_urls():
    no_db = {**EXTERNAL, "postgresql": {"enabled": False}}
    assert "postgresql.external.feedbackUrl is required" in render_error(no_db)
    assert "redis.external.url is required" in render_error({**EXTERNAL, "redis": {"enabled": False}})
    assert "qdrant.external.url is required" in render_error({**EXTERNAL, "qdrant": {"enabled": False}})
    assert "mlflow.external.url is required" in render_error({**EXTERNAL, "mlflow": {"enabled": False}})


# --- security ---


def test_pods_run_unprivileged(docs):
    for workload in workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context["readOnlyRootFilesystem"] is True, name
            assert "resources" in container, name


def test_network_policies_deny_by_default_and_allow_callers(default_docs):
    policies = {component(p): p for p in find(default_docs, "NetworkPolicy")}
    deny = policies.pop("platform")
    assert deny["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in deny["spec"]
    assert set(policies) == {component(w) for w in workloads(default_docs)}

    def allowed(target: str, port: int) -> list:
        return [
            rule.get("from")
            for rule in policies[target]["spec"]["ingress"]
            if port in {p["port"] for p in rule["ports"]}
        ]

    assert None in allowed("gateway", 8000), "the gateway is open to any client"
    for target in set(policies) - {"gateway"}:
        for rule in policies[target]["spec"]["ingress"]:
            assert rule.get("from"), f"{target} must not be open to everyone"

    def callers(target: str, port: int) -> set[str]:
        return {
            peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
            for peers in allowed(target, port)
            for peer in peers
            if "namespaceSelector" not in peer
        }

    assert callers("postgresql", 5432) == {
        *("gateway", "feedback", "trainer", "trainer-worker", "batch-worker", "evaluation-worker", "mlflow")
    }
    assert callers("redis", 6379) == {
        *("gateway", "trainer", "trainer-worker", "batch-worker", "feedback", "evaluation-worker")
    }
    assert callers("qdrant", 6333) == {"retriever"}
    assert callers("inference", 8002) == {"gateway"}
    assert callers("inference", 8012) == set(), "vLLM's metrics port: Prometheus only"
    assert callers("feedback", 8004) == {"gateway", "trainer", "trainer-worker"}
    assert callers("trainer", 8003) == {"gateway"}  # the console's training page (and the admin peers)
    assert callers("mlflow", 5000) == {"gateway", "inference", "trainer", "trainer-worker"}


# --- observability objects ---


def test_prometheus_operator_objects(gpu_docs):
    monitors = find(gpu_docs, "ServiceMonitor")
    assert {component(m) for m in monitors} == set(SERVICES)
    services = {component(s): s for s in find(gpu_docs, "Service")}
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        service = services[component(monitor)]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["jobLabel"] in service["metadata"]["labels"]
        port_names = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
    vllm = one(gpu_docs, "ServiceMonitor", "inference")["spec"]["endpoints"][1]
    assert vllm["port"] == "vllm-metrics" and vllm["relabelings"] == [{"targetLabel": "job", "replacement": "vllm"}]
    (rule,) = find(gpu_docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == yaml.safe_load((CHART / "files/alerts.yml").read_text())["groups"]


def test_grafana_dashboards_configmap(default_docs):
    (dashboards,) = find(default_docs, "ConfigMap", "dashboards")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    files = sorted((CHART / "files/dashboards").glob("*.json"))
    assert files and sorted(dashboards["data"]) == [f.name for f in files]
    for f in files:
        assert json.loads(dashboards["data"][f.name]) == json.loads(f.read_text())


def test_batch_workers_share_the_gateways_files_and_send_lines_to_its_service(default_docs):
    gateway_pod = one(default_docs, "Deployment", "gateway")["spec"]["template"]["spec"]
    worker_pod = one(default_docs, "Deployment", "batch-worker")["spec"]["template"]["spec"]
    (claim,) = find(default_docs, "PersistentVolumeClaim", "batch-worker")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for pod in (gateway_pod, worker_pod):
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["files"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["files"] == "/var/lib/llmops/files"
    gateway, _, _ = service_settings(default_docs, one(default_docs, "Deployment", "gateway"))
    worker, _, _ = service_settings(default_docs, one(default_docs, "Deployment", "batch-worker"))
    assert gateway.files_url == worker.files_url == "/var/lib/llmops/files"
    assert gateway.batch_token == worker.batch_token and worker.batch_token
    assert worker.batch_gateway_url == "http://demo-llmops-gateway:8000"
    assert worker_pod["containers"][0]["command"] == ["python", "-m", "llmops_gateway.batches.worker"]
