"""docker-compose.yml and the images' Dockerfiles, checked with the real tools that run without a container engine.

The compose file against the compose specification's JSON schema (the copy PyPI's check-jsonschema ships), the
Dockerfiles with Moby's own parser (PyPI ``dockerfile``) and hadolint. Then what no schema knows: secrets required
from the environment, health checks that probe the right port and the dependencies that wait on them, every
environment variable a real settings field whose value parses, Prometheus scraping every service and vLLM, mounted
files present, images multi-stage and non-root, versions in step with constraints.txt, and MLflow answering the
services under the name compose gives it. The Debian `docker-compose` 1.x binary is not used: it predates the spec.
"""

import importlib
import importlib.resources
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import dockerfile
import httpx
import jsonschema
import pytest
import yaml

from llmops_cli.procs import free_port, spawn, stop_processes
from llmops_cli.services import DEFAULT_PORTS
from llmops_common.contracts.serving import INFERENCE_TOKEN_ENV
from llmops_common.health import health_router
from llmops_common.settings import ServiceSettings
from llmops_testkit.processes import wait_ready

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
HADOLINT_CONFIG = Path(__file__).with_name("hadolint.yaml")

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY|_AUTH$")
# Variables our images set that are not service settings: the interpreter's, and the model libraries' caches.
NON_SETTINGS_ENV = {
    "PATH",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "HOME",
    "HF_HOME",
    "HF_HUB_OFFLINE",
    "VLLM_NO_USAGE_STATS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",  # llmops_common.tracing reads OTel's own variables
    INFERENCE_TOKEN_ENV,  # the gateway's copy of the inference serving token, which route variants name
}
PROBE_URL = re.compile(r"http://127\.0\.0\.1:(\d+)(/[a-z]+)")


# --- compose interpolation (the spec's syntax: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error},
# ${VAR?error}, ${VAR:+alt}, ${VAR+alt}) ---

_REFERENCE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?\Z", re.DOTALL)


class MissingVariable(ValueError):
    pass


def references(text: str) -> list[tuple[str, str, str]]:
    """(name, operator, argument) of every variable ``text`` refers to."""
    found = []
    for match in _REFERENCE.finditer(text):
        if match["escaped"]:
            continue
        if match["bare"]:
            found.append((match["bare"], "", ""))
            continue
        braced = _BRACED.match(match["braced"])
        assert braced, f"not a valid interpolation: ${{{match['braced']}}}"
        found.append((braced["name"], braced["op"] or "", braced["arg"] or ""))
    return found


def interpolate(text: str, env: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = references(match[0])[0]
        value = env.get(name)
        present = value is not None and (value != "" or not op.startswith(":"))
        if op.endswith("?") and not present:
            raise MissingVariable(f"{name}: {arg}")
        if op.endswith("-"):
            return value if present else arg
        if op.endswith("+"):
            return arg if present else ""
        return value or ""

    return _REFERENCE.sub(replace, text)


def walk_strings(node, fn):
    """``node`` with ``fn`` applied to every string in it (keys stay as they are)."""
    if isinstance(node, dict):
        return {key: walk_strings(value, fn) for key, value in node.items()}
    if isinstance(node, list):
        return [walk_strings(item, fn) for item in node]
    return fn(node) if isinstance(node, str) else node


def all_strings(node) -> list[str]:
    found: list[str] = []
    walk_strings(node, lambda s: found.append(s) or s)
    return found


# --- the compose file and the images it builds ---


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def secrets(raw) -> dict[str, str]:
    """A value for every secret the file asks for: long, distinct, not a development default."""
    names = {name for s in all_strings(raw) for name, _, _ in references(s) if SECRET_NAME.search(name)}
    return {name: f"{name.lower()}-0123456789abcdef" for name in names}


@pytest.fixture(scope="module")
def compose(raw, secrets) -> dict:
    """The file as compose sees it with the secrets set and nothing else: defaults applied."""
    return walk_strings(raw, lambda s: interpolate(s, secrets))


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def parse_dockerfile(path: Path) -> list[list[dockerfile.Command]]:
    """The file's build stages (the ARG lines before the first FROM form stage 0's preamble)."""
    stages: list[list[dockerfile.Command]] = [[]]
    for command in dockerfile.parse_file(str(path)):
        if command.cmd == "FROM" and stages[-1] and any(c.cmd == "FROM" for c in stages[-1]):
            stages.append([])
        stages[-1].append(command)
    return stages


def image_env(path: Path) -> dict[str, str]:
    """The ENV the final stage of a Dockerfile sets."""
    env: dict[str, str] = {}
    for command in parse_dockerfile(path)[-1]:
        if command.cmd == "ENV":
            env.update(zip(command.value[::2], command.value[1::2]))
    return env


def build_args(path: Path) -> dict[str, str]:
    return dict(
        v.split("=", 1) for c in dockerfile.parse_file(str(path)) if c.cmd == "ARG" for v in c.value if "=" in v
    )


def our_package(service: dict) -> str | None:
    """The service package a compose service builds (``services/<name>/Dockerfile*``), or None for infrastructure."""
    match = re.fullmatch(r"services/(\w+)/Dockerfile(\.\w+)?", (service.get("build") or {}).get("dockerfile", ""))
    return match[1] if match else None


def settings_class(package: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"llmops_{package}.settings")
    (cls,) = [
        c
        for _, c in inspect.getmembers(module, inspect.isclass)
        if issubclass(c, ServiceSettings) and c is not ServiceSettings and c.__module__ == module.__name__
    ]
    return cls


WORKER_HEALTH_SOURCE = "libs/common/src/llmops_common/worker_health.py"  # every worker's health endpoints

# Celery workers run from a service's image with another command, and serve health on a port of their own:
# module -> (DEFAULT_PORTS name, settings field of that port, the source of its health endpoints).
WORKERS = {
    "llmops_trainer.worker": ("trainer_worker", "worker_port", WORKER_HEALTH_SOURCE),
    "llmops_gateway.batches.worker": (
        "batch_worker",
        "batch_worker_port",
        WORKER_HEALTH_SOURCE,
    ),
    "llmops_feedback.evaluation.worker": (
        "evaluation_worker",
        "eval_worker_port",
        WORKER_HEALTH_SOURCE,
    ),
}


def worker(service: dict) -> tuple[str, str, str] | None:
    command = service.get("command") or []
    return WORKERS.get(command[-1]) if len(command) >= 2 and command[-2] == "-m" else None


def is_worker(service: dict) -> bool:
    return worker(service) is not None


def contract_port(package: str, service: dict) -> int:
    return DEFAULT_PORTS[worker(service)[0] if is_worker(service) else package]


def ours(compose: dict) -> dict[str, tuple[str, dict]]:
    return {name: (pkg, svc) for name, svc in compose["services"].items() if (pkg := our_package(svc))}


def probe(service: dict) -> tuple[int, str]:
    """Port and path a healthcheck asks."""
    match = PROBE_URL.search(" ".join(service["healthcheck"]["test"]))
    assert match, f"the healthcheck does not ask a local URL: {service['healthcheck']['test']}"
    return int(match[1]), match[2]


def mounts(service: dict) -> list[tuple[str, str]]:
    """(source, target) of every volume entry in short syntax."""
    return [tuple(entry.split(":")[:2]) for entry in service.get("volumes") or []]


# --- the compose specification ---


def test_compose_file_follows_the_compose_specification(raw, compose):
    schema_file = importlib.resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    for document in (raw, compose):  # as written, and as compose sees it after interpolation
        errors = sorted(validator_class(schema).iter_errors(document), key=lambda e: list(e.absolute_path))
        assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_every_secret_is_required_from_the_environment(raw, secrets):
    # Named in the environment only, never with a default: compose refuses to start without each one.
    assert {"LLMOPS_ADMIN_TOKEN", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= secrets.keys()
    for text in all_strings(raw):
        for name, op, arg in references(text):
            if SECRET_NAME.search(name):
                assert op == ":?" and arg.strip(), f"${{{name}}} must be written ${{{name}:?message}}: {text}"
    for name in secrets:
        without = {k: v for k, v in secrets.items() if k != name}
        with pytest.raises(MissingVariable, match=name):
            walk_strings(raw, lambda s, env=without: interpolate(s, env))
    # Secrets in settings, passwords in URLs: only from the environment, never written in the file.
    for service_name, service in raw["services"].items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", value), f"{service_name}: {key} is not from the environment"
        for text in all_strings(service):
            for password in re.findall(r"://[^/:@\s]*:([^@\s]+)@", text):
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", password), f"{service_name}: a password written in {text}"


def test_ports_are_published_on_loopback_only(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"


def test_named_volumes_are_declared_and_used(compose):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in compose["services"].items():
        for source, _ in mounts(service):
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts the undeclared volume {source}"
                used.add(source)
    assert declared == used


def test_volumes_of_our_images_mount_on_directories_the_image_user_owns(compose):
    """Docker gives a new named volume the owner of the directory it mounts on; an absent mount point would be
    root's, and our non-root services could not write there."""
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        runs = " ".join(
            c.value[0] for c in parse_dockerfile(ROOT / service["build"]["dockerfile"])[-1] if c.cmd == "RUN"
        )
        owned = set(re.findall(r"--home-dir (\S+) --create-home", runs)) | set(
            re.findall(r"install -d -o 10001 -g 10001 (\S+)", runs)
        )
        for source, target in mounts(service):
            if not source.startswith((".", "/")):
                assert target in owned, f"{name}: volume {source} on {target}, a directory the image does not own"


def test_mounted_files_exist(compose):
    for name, service in compose["services"].items():
        for source, target in mounts(service):
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source} on {target}, which is not in the repository"


def test_every_service_has_a_healthcheck_and_dependents_wait_for_it(compose):
    services = compose["services"]
    for name, service in services.items():
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on {dependency}, which is not a service"
            assert spec == {"condition": "service_healthy"}, f"{name} starts before {dependency} is healthy"
            # A service that always runs cannot wait on one only a profile starts.
            assert not services[dependency].get("profiles") or service.get("profiles"), (name, dependency)


def test_our_services_probe_their_own_port_on_paths_they_serve(compose):
    served = {route.path for route in health_router({}).routes}
    for name, (package, service) in ours(compose).items():
        port, path = probe(service)
        assert port == contract_port(package, service), f"{name} probes port {port}"
        # Compose waits on readiness: a dependent should find the service able to serve, not only alive.
        assert path == "/readyz", f"{name} probes {path}"
        if is_worker(service):
            assert f'self.path == "{path}"' in (ROOT / worker(service)[2]).read_text()
        else:
            assert path in served


def test_the_batch_worker_runs_from_the_gateway_image_and_shares_its_files(compose):
    batch, gateway = compose["services"]["batch-worker"], compose["services"]["gateway"]
    assert batch["image"] == gateway["image"] and batch["environment"] == gateway["environment"]
    assert batch["command"][-2:] == ["-m", "llmops_gateway.batches.worker"]
    files = gateway["environment"]["GATEWAY_FILES_URL"]
    assert ("gateway-files", files) in mounts(batch) and ("gateway-files", files) in mounts(gateway)
    assert gateway["environment"]["GATEWAY_BATCH_GATEWAY_URL"] == "http://gateway:8000"
    module = importlib.import_module("llmops_gateway.batches.worker.__main__")
    assert callable(module.main)


def test_the_gpu_batch_worker_runs_the_vllm_image_under_its_profile(compose):
    """batch-worker-gpu: the gateway's batch worker on vLLM's CUDA image with the offline engine on, only with
    `--profile batch-engine`; a GPU reserved as for inference-gpu, the gateway's settings and files otherwise."""
    services = compose["services"]
    gpu, batch, gateway = services["batch-worker-gpu"], services["batch-worker"], services["gateway"]
    assert gpu["profiles"] == ["batch-engine"] and not batch.get("profiles")
    assert gpu["build"] == {"context": ".", "dockerfile": "services/gateway/Dockerfile.vllm"}
    assert gpu["image"].startswith("llmops-gateway-vllm:") and gpu["image"] != batch["image"]
    assert gpu["command"][-2:] == ["-m", "llmops_gateway.batches.worker"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    (inference_device,) = services["inference-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == inference_device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert gpu["shm_size"] == services["inference-gpu"]["shm_size"]
    env = environment(gpu)
    engine = {k: v for k, v in env.items() if k.startswith("GATEWAY_BATCH_ENGINE")}
    assert {k: v for k, v in env.items() if k not in engine} == environment(gateway)
    assert set(engine) == {
        *("GATEWAY_BATCH_ENGINE", "GATEWAY_BATCH_ENGINE_MODEL", "GATEWAY_BATCH_ENGINE_SERVED_NAMES"),
        *("GATEWAY_BATCH_ENGINE_CHUNK_LINES", "GATEWAY_BATCH_ENGINE_ARGS"),
    }
    files = gateway["environment"]["GATEWAY_FILES_URL"]
    assert ("gateway-files", files) in mounts(gpu)
    # What the worker's settings make of the image's and the service's environment: the engine on, its model the
    # bundled one by default, which the engine stands for under the name inference serves it as.
    image = image_env(ROOT / "services/gateway/Dockerfile.vllm")
    assert image["GATEWAY_BATCH_ENGINE"] == "vllm"
    from llmops_common.contracts.models import BUNDLED_MODEL_NAME
    from llmops_gateway.batches.worker.engine import served_names
    from llmops_gateway.settings import BatchEngine, GatewaySettings

    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("GATEWAY_")]:
            patch.delenv(key)
        for key, value in {**image, **env}.items():
            patch.setenv(key, value)
        settings = GatewaySettings()
    assert settings.batch_engine is BatchEngine.vllm and settings.batch_engine_chunk_lines == 64
    assert served_names(settings) == [BUNDLED_MODEL_NAME]
    assert settings.batch_engine_args["gpu_memory_utilization"] <= 1


def test_the_trainer_worker_runs_from_the_trainer_image(compose):
    worker = compose["services"]["trainer-worker"]
    assert worker["image"] == compose["services"]["trainer"]["image"]
    assert worker["command"][-2:] == ["-m", "llmops_trainer.worker"]
    module = importlib.import_module("llmops_trainer.worker.__main__")
    assert callable(module.main)


def test_the_evaluation_worker_runs_from_the_feedback_image(compose):
    worker = compose["services"]["evaluation-worker"]
    assert worker["image"] == compose["services"]["feedback"]["image"]
    assert worker["command"][-2:] == ["-m", "llmops_feedback.evaluation.worker"]
    assert callable(importlib.import_module("llmops_feedback.evaluation.worker").main)


def test_environment_names_are_settings_fields_and_values_parse(compose, monkeypatch):
    """The image's ENV and the compose environment together, as the service's settings class reads them: a typo in
    a name, a value that does not parse or a secret left to a development default fails here."""
    for name, (package, service) in ours(compose).items():
        cls = settings_class(package)
        prefix = cls.model_config["env_prefix"]
        env = {**image_env(ROOT / service["build"]["dockerfile"]), **environment(service)}
        for key in env:
            if key.startswith(prefix):
                assert key[len(prefix) :].lower() in cls.model_fields, f"{name}: {key} is not a {cls.__name__} field"
            else:
                assert key in NON_SETTINGS_ENV, f"{name}: {key} is neither a {prefix}* setting nor a known variable"
        for key in os.environ:
            if key.startswith(prefix):
                monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith(prefix):
                monkeypatch.setenv(key, value)
        settings = cls()
        assert not settings.dev_mode
        field = worker(service)[1] if is_worker(service) else "port"
        assert getattr(settings, field.replace("port", "host")) == "0.0.0.0"
        assert getattr(settings, field) == contract_port(package, service)
        accessors = (
            "admin_token_value",
            "key_secret_value",
            "read_token_value",
            "ingest_token_value",
            "serving_tokens",
        )
        for accessor in accessors:
            if hasattr(settings, accessor):
                getattr(settings, accessor)()  # raises when a secret is missing or a development default
        monkeypatch.undo()


def test_inference_is_closed_and_its_callers_hold_its_serving_token(compose):
    """Inference's /v1 answers one serving token (InferenceSettings.serving_tokens refuses to start without it);
    the gateway holds it under the name route variants give in api_key_env, the feedback service asks with it."""
    services = compose["services"]
    token = environment(services["inference"])[INFERENCE_TOKEN_ENV]
    assert token and environment(services["inference-gpu"])[INFERENCE_TOKEN_ENV] == token
    assert "INFERENCE_OPEN_SERVING" not in environment(services["inference"])
    assert environment(services["gateway"])[INFERENCE_TOKEN_ENV] == token
    assert environment(services["feedback"])["FEEDBACK_INFERENCE_SERVING_TOKEN"] == token


def test_services_reach_each_other_by_compose_names(compose):
    """Every http:// URL and database host in our services' settings names a service (or a network alias) of the
    file, on that service's contract port where it is one of ours."""
    services = compose["services"]
    names = set(services) | {
        a for s in services.values() for n in (s.get("networks") or {}).values() for a in (n or {}).get("aliases", [])
    }
    ports = {name: contract_port(pkg, svc) for name, (pkg, svc) in ours(compose).items()} | {"mlflow": 5000}
    for name, (_, service) in ours(compose).items():
        for key, value in environment(service).items():
            if "://" in value:
                url = urlsplit(value)
                assert url.hostname in names, f"{name}: {key} points at {url.hostname}, not a compose service"
                if url.hostname in ports:
                    assert url.port == ports[url.hostname], f"{name}: {key} uses port {url.port}"


def test_postgres_creates_every_database_the_services_use(compose):
    init = next(
        ROOT / source
        for source, target in mounts(compose["services"]["postgres"])
        if target.startswith("/docker-entrypoint-initdb.d/")
    )
    created = set(re.findall(r"^CREATE DATABASE (\w+);", init.read_text(), re.MULTILINE))
    user = compose["services"]["postgres"]["environment"]["POSTGRES_USER"]
    used = set()
    for service in compose["services"].values():
        for value in environment(service).values():
            url = urlsplit(value)
            if url.hostname == "postgres":
                assert url.username == user and url.port in (None, 5432)
                used.add(url.path.lstrip("/"))
    assert used == created == {"gateway", "feedback", "trainer", "mlflow"}


def test_gpu_profile_runs_the_cuda_image_under_the_same_name(compose):
    services = compose["services"]
    cpu, gpu = services["inference"], services["inference-gpu"]
    assert not cpu.get("profiles") and cpu["build"]["dockerfile"] == "services/inference/Dockerfile.cpu"
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["dockerfile"] == "services/inference/Dockerfile"
    assert "inference" in gpu["networks"]["default"]["aliases"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    # Both publish the same port: running both by mistake fails at start instead of splitting traffic.
    assert cpu["ports"] == gpu["ports"]
    assert environment(cpu) == environment(gpu)


def test_prometheus_scrapes_every_service_and_vllm(compose):
    prometheus = compose["services"]["prometheus"]
    config_source = next(src for src, dst in mounts(prometheus) if dst == "/etc/prometheus/prometheus.yml")
    config = yaml.safe_load((ROOT / config_source).read_text())
    targets = set()
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for static in job.get("static_configs", []):
            targets |= {tuple(t.rsplit(":", 1)) for t in static["targets"]}
        for dns in job.get("dns_sd_configs", []):
            targets |= {(name, str(dns["port"])) for name in dns["names"]}
    expected = {
        (name, str(contract_port(pkg, svc))) for name, (pkg, svc) in ours(compose).items() if name != "inference-gpu"
    }  # answers as `inference`
    expected.add(("inference", str(DEFAULT_PORTS["vllm"])))
    assert expected <= targets, f"not scraped: {sorted(expected - targets)}"
    # The alert rules are the chart's file, mounted where the config loads them from.
    rules_target = next(dst for src, dst in mounts(prometheus) if src.endswith("deploy/helm/llmops/files/alerts.yml"))
    assert config["rule_files"] == [rules_target]


def test_promtool_accepts_the_prometheus_config(compose, tmp_path):
    """Debian's promtool (scripts/ensure-system-packages.sh installs it) on the config and the rules it loads, with
    the rule file at its repository path instead of its mount point."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install prometheus (make install does it when it can)"
    prometheus = compose["services"]["prometheus"]
    config_source = next(src for src, dst in mounts(prometheus) if dst == "/etc/prometheus/prometheus.yml")
    config = yaml.safe_load((ROOT / config_source).read_text())
    config["rule_files"] = [str(ROOT / src) for src, dst in mounts(prometheus) if dst in config["rule_files"]]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisions_the_prometheus_datasource_and_the_chart_dashboards(compose):
    grafana = compose["services"]["grafana"]
    targets = {dst: ROOT / src for src, dst in mounts(grafana) if src.startswith(".")}
    datasources = yaml.safe_load((targets["/etc/grafana/provisioning/datasources"] / "prometheus.yml").read_text())
    (datasource,) = datasources["datasources"]
    assert datasource["uid"] == "prometheus" and datasource["type"] == "prometheus"
    assert urlsplit(datasource["url"]).hostname == "prometheus"
    providers = yaml.safe_load((targets["/etc/grafana/provisioning/dashboards"] / "llmops.yml").read_text())
    (provider,) = providers["providers"]
    dashboards = targets[provider["options"]["path"]]
    assert dashboards == ROOT / "deploy/helm/llmops/files/dashboards"
    assert {p.stem for p in dashboards.glob("*.json")} >= {"gateway", "inference", "feedback", "trainer"}


# --- the Dockerfiles ---


def dockerfiles() -> list[Path]:
    return sorted([*ROOT.glob("services/*/Dockerfile*"), *ROOT.glob("deploy/*/Dockerfile")])


def test_compose_builds_every_image_of_the_repository(compose):
    built = {ROOT / s["build"]["dockerfile"] for s in compose["services"].values() if "build" in s}
    assert built == set(dockerfiles())
    for service in compose["services"].values():
        if "build" in service:
            assert service["build"]["context"] == "."  # they copy constraints.txt and libs/common


def _glob_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            out, i = out + {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i])), i + 1
    return re.compile(out)


def dockerignored(path: str) -> bool:
    """Docker's rule: a path is left out when it or a parent directory matches; later `!` patterns take it back."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    parts, ignored = path.strip("/").split("/"), False
    for line in (line.strip() for line in lines):
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").strip("/")
        if any(_glob_regex(pattern).fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_context():
    for path in (
        ".git/config",
        ".venv/bin/python",
        ".llmops/secrets.env",
        ".env",
        "bench/results/x.json",
        "services/gateway/tests/test_x.py",
        "libs/common/src/llmops_common/__pycache__/x.pyc",
    ):
        assert dockerignored(path), path
    assert not dockerignored("libs/common/pyproject.toml") and not dockerignored("constraints.txt")


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: str(p.relative_to(ROOT)))
def test_image_is_multi_stage_non_root_and_healthchecked(path):
    stages = parse_dockerfile(path)
    assert len(stages) >= 2, "multi-stage: build tools stay out of the image that runs"
    final = stages[-1]
    (user,) = [c.value[0] for c in final if c.cmd == "USER"][-1:]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: a numeric non-root uid (Kubernetes' runAsNonRoot)"
    (healthcheck,) = [c for c in final if c.cmd == "HEALTHCHECK"]
    assert healthcheck.json and healthcheck.value[0] == "CMD"
    exposed = {port for c in final if c.cmd == "EXPOSE" for port in c.value}
    for port, probe_path in PROBE_URL.findall(" ".join(healthcheck.value)):
        assert port in exposed and probe_path in ("/healthz", "/health")
    (cmd,) = [c for c in final if c.cmd == "CMD"][-1:]
    assert cmd.json, "exec-form CMD: the server is PID 1 and receives SIGTERM itself"
    for command in final:
        if command.cmd in ("ENV", "ARG"):
            names = command.value[::2] if command.cmd == "ENV" else [v.split("=")[0] for v in command.value]
            assert not [n for n in names if SECRET_NAME.search(n)], f"a secret baked into the image: {command.original}"
    # What the build copies from the context is there and not left out by .dockerignore.
    for command in dockerfile.parse_file(str(path)):
        if command.cmd == "COPY" and not any(flag.startswith("--from") for flag in command.flags):
            for source in command.value[:-1]:
                assert (ROOT / source).exists() and not dockerignored(source), f"COPY {source}"
                if (ROOT / source / "pyproject.toml").exists():
                    assert not dockerignored(f"{source}/pyproject.toml")


def test_hadolint_finds_nothing():
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run(
        [str(hadolint), "--config", str(HADOLINT_CONFIG), "--no-color", *map(str, dockerfiles())],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _constraint(name: str) -> str:
    match = re.search(
        rf"^{re.escape(name)}==(\S+)$", (ROOT / "constraints.txt").read_text(), re.MULTILINE | re.IGNORECASE
    )
    assert match, f"constraints.txt pins no {name}"
    return match[1]


def test_image_versions_follow_the_project_pins(compose):
    # The CUDA image's vLLM is the inference package's `cuda` extra.
    extras = tomllib.loads((ROOT / "services/inference/pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["cuda"] == [f"vllm=={build_args(ROOT / 'services/inference/Dockerfile')['VLLM_VERSION']}"]
    # So is the GPU batch worker's: one vLLM release on the platform's GPUs.
    assert extras["cuda"] == [f"vllm=={build_args(ROOT / 'services/gateway/Dockerfile.vllm')['VLLM_VERSION']}"]
    # The CPU torch builds are constraints.txt's torch with PyTorch's local label.
    for path in ROOT.glob("services/*/Dockerfile*"):
        if version := build_args(path).get("TORCH_VERSION"):
            assert version.split("+")[0] == _constraint("torch"), path
    # MLflow's image installs under constraints.txt, which pins its version and its PostgreSQL driver.
    mlflow_install = [
        c.value[0] for c in dockerfile.parse_file(str(ROOT / "deploy/mlflow/Dockerfile")) if c.cmd == "RUN"
    ]
    assert any("-c /tmp/constraints.txt mlflow 'psycopg[binary]'" in run for run in mlflow_install)
    assert _constraint("mlflow") and _constraint("psycopg") == _constraint("psycopg-binary")
    # The Qdrant server's minor version is the client's: qdrant-client refuses a server more than one minor away.
    server = re.match(r"qdrant/qdrant:v(\d+\.\d+)\.", compose["services"]["qdrant"]["image"])
    assert server and _constraint("qdrant-client").startswith(server[1] + ".")


def test_mlflow_answers_the_services_under_the_name_compose_gives_it(compose, postgres_database_url, tmp_path):
    """MLflow as compose configures it (its image's command and environment) on a real PostgreSQL: the services'
    requests to http://mlflow:5000 pass its Host header check, others are refused, artifacts go through the server."""
    service = compose["services"]["mlflow"]
    path = ROOT / service["build"]["dockerfile"]
    env = {**image_env(path), **environment(service)}
    backend = urlsplit(env["MLFLOW_BACKEND_STORE_URI"])
    assert (backend.scheme, backend.hostname, backend.path) == ("postgresql", "postgres", "/mlflow")
    (argv,) = [c.value for c in parse_dockerfile(path)[-1] if c.cmd == "CMD"]
    port = free_port()
    argv = [sys.executable, "-m", *argv[:2], *[{"0.0.0.0": "127.0.0.1", "5000": str(port)}.get(a, a) for a in argv[2:]]]
    env |= {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "MLFLOW_BACKEND_STORE_URI": postgres_database_url.replace("postgresql+asyncpg://", "postgresql://", 1),
        "MLFLOW_ARTIFACTS_DESTINATION": str(tmp_path / "artifacts"),
    }
    process = spawn(argv, log_path=tmp_path / "mlflow.log", env=env, cwd=tmp_path, die_with_parent=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", timeout_s=180, process=process)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, trust_env=False) as client:
            as_service = {"host": "mlflow:5000"}
            created = client.post("/api/2.0/mlflow/experiments/create", json={"name": "compose"}, headers=as_service)
            assert created.status_code == 200, created.text
            experiment_id = created.json()["experiment_id"]
            artifact = f"/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/adapter/adapter_config.json"
            assert client.put(artifact, content=b'{"r": 8}', headers=as_service).status_code == 200
            assert client.get(artifact, headers=as_service).content == b'{"r": 8}'
            assert (tmp_path / "artifacts" / experiment_id / "adapter/adapter_config.json").exists()
            refused = client.get("/api/2.0/mlflow/experiments/search?max_results=1", headers={"host": "evil.test:5000"})
            assert refused.status_code == 403
    except Exception:
        print((tmp_path / "mlflow.log").read_text(errors="replace")[-4000:])
        raise
    finally:
        stop_processes([process])
