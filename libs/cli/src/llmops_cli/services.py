"""The platform's services as ``llmops up`` runs them and ``llmops status`` finds them.

To add a service: give it a default port in ``DEFAULT_PORTS`` (the contract's port) and a spec builder in
``platform_services``. Everything else (supervision, readiness, status, port overrides) follows.
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from llmops_cli.defaults import DEFAULT_ROUTE
from llmops_cli.state import Secrets
from llmops_cli.supervisor import ServiceSpec
from llmops_common.contracts.serving import INFERENCE_TOKEN_ENV

# The contract's ports. vLLM is the inference
# service's child; its port is listed so `llmops up` checks it is free and `llmops status` shows the engine.
DEFAULT_PORTS: dict[str, int] = {
    "gateway": 8000,
    "retriever": 8001,
    "inference": 8002,
    "feedback": 8004,
    "mlflow": 5000,
    "vllm": 8012,
    "trainer": 8003,
    "trainer_worker": 8013,  # the trainer's Celery worker: its health and metrics endpoints
    "batch_worker": 8014,  # the gateway's batch worker (Celery): its health and metrics endpoints
    "evaluation_worker": 8015,  # the feedback service's evaluation worker (Celery): health and metrics
}
# Where readiness is asked, for services that are not ours (default /readyz).
READY_PATHS: dict[str, str] = {"mlflow": "/health", "vllm": "/health"}
# The closed loop's clocks on one machine: the controller's pass (each moves a retraining policy one step: job
# submitted, adapter added to the route, experiment opened; and decides experiments) and inference's read of the
# registry (a new adapter is served). The services' defaults (30 s, 15 s) suit a cluster; here one replica on SQLite
# spends a few milliseconds a pass, and a loop that waits up to 30 s at each of its four steps made `llmops demo`
# spend about a minute doing nothing. The decision rule is always-valid, so looking more often is safe.
# An environment variable of the service's own still wins.
LOCAL_LOOP_INTERVAL_S = "5"


@dataclass(frozen=True)
class PlatformContext:
    state: Path
    secrets: Secrets
    redis_url: str
    ports: dict[str, int]


def _env_name(service: str, what: str) -> str:
    return f"LLMOPS_{service.upper()}_{what}"


def resolve_ports(overrides: list[str] | None = None) -> dict[str, int]:
    """Default ports, then ``LLMOPS_<NAME>_PORT``, then ``--port NAME=PORT`` options."""
    ports = dict(DEFAULT_PORTS)
    for name in ports:
        if value := os.environ.get(_env_name(name, "PORT")):
            ports[name] = int(value)
    for item in overrides or []:
        name, sep, value = item.partition("=")
        if not sep or name not in ports or not value.isdigit():
            raise ValueError(f"--port expects NAME=PORT with NAME one of {', '.join(ports)}; got {item!r}")
        ports[name] = int(value)
    return ports


def service_url(name: str) -> str:
    """Where a running service is: ``LLMOPS_<NAME>_URL``, else loopback on its (possibly overridden) port."""
    if url := os.environ.get(_env_name(name, "URL")):
        return url.rstrip("/")
    return f"http://127.0.0.1:{resolve_ports()[name]}"


def service_urls() -> dict[str, str]:
    return {name: service_url(name) for name in DEFAULT_PORTS}


def uvicorn_argv(app_factory: str, port: int) -> list[str]:
    # The same interpreter as the CLI: the services are installed in its environment.
    return [sys.executable, "-m", "uvicorn", app_factory, "--factory", "--host", "127.0.0.1", "--port", str(port)]


def _gateway_env(ctx: PlatformContext) -> dict[str, str]:
    """The gateway and its batch worker read the same settings."""
    return {
        "GATEWAY_ADMIN_TOKEN": ctx.secrets.admin_token,
        "GATEWAY_KEY_SECRET": ctx.secrets.key_secret,
        "GATEWAY_REDIS_URL": ctx.redis_url,
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{ctx.state / 'gateway.db'}",
        "GATEWAY_REQUEST_LOG_SINK": "feedback",
        "GATEWAY_FEEDBACK_URL": f"http://127.0.0.1:{ctx.ports['feedback']}",
        "GATEWAY_FEEDBACK_TOKEN": ctx.secrets.ingest_token,
        "GATEWAY_SPOOL_DIR": str(ctx.state / "spool"),
        "GATEWAY_RETRIEVER_URL": f"http://127.0.0.1:{ctx.ports['retriever']}",
        "GATEWAY_RETRIEVER_TOKEN": ctx.secrets.retriever_token,
        # The console's pages: feedback (request log, quality, experiments), retriever uploads, training jobs and
        # MLflow's registry, read and changed with the admin token.
        "GATEWAY_FEEDBACK_ADMIN_TOKEN": ctx.secrets.admin_token,
        "GATEWAY_RETRIEVER_ADMIN_TOKEN": ctx.secrets.admin_token,
        "GATEWAY_TRAINER_URL": f"http://127.0.0.1:{ctx.ports['trainer']}",
        "GATEWAY_TRAINER_ADMIN_TOKEN": ctx.secrets.admin_token,
        "GATEWAY_MLFLOW_URL": f"http://127.0.0.1:{ctx.ports['mlflow']}",
        # Batches: files on local disk, lines sent back through this gateway with the admin token (as in Helm).
        "GATEWAY_FILES_URL": str(ctx.state / "files"),
        "GATEWAY_BATCH_TOKEN": ctx.secrets.admin_token,
        "GATEWAY_BATCH_GATEWAY_URL": f"http://127.0.0.1:{ctx.ports['gateway']}",
        "GATEWAY_BATCH_WORKER_PORT": str(ctx.ports["batch_worker"]),
        # Not a gateway setting: the inference service's serving token, which its routes name in `api_key_env`.
        INFERENCE_TOKEN_ENV: ctx.secrets.serving_token,
    }


def gateway_spec(ctx: PlatformContext) -> ServiceSpec:
    port = ctx.ports["gateway"]
    return ServiceSpec(
        name="gateway",
        # Its own entry point: uvloop, httptools, no access log, GATEWAY_WORKERS processes (llmops_common.serve).
        argv=[sys.executable, "-m", "llmops_gateway", "--host", "127.0.0.1", "--port", str(port)],
        port=port,
        env={**_gateway_env(ctx), "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port)},
    )


def batch_worker_spec(ctx: PlatformContext) -> ServiceSpec:
    """The batch worker: runs /v1/batches shards as Celery tasks, each line through the gateway."""
    return ServiceSpec(
        name="batch_worker",
        argv=[sys.executable, "-m", "llmops_gateway.batches.worker"],
        port=ctx.ports["batch_worker"],
        env=_gateway_env(ctx),
        ready_timeout_s=120.0,
    )


def retriever_spec(ctx: PlatformContext) -> ServiceSpec:
    port = ctx.ports["retriever"]
    return ServiceSpec(
        name="retriever",
        argv=uvicorn_argv("llmops_retriever.app:create_app", port),
        port=port,
        env={
            "RETRIEVER_HOST": "127.0.0.1",
            "RETRIEVER_PORT": str(port),
            "RETRIEVER_ADMIN_TOKEN": ctx.secrets.admin_token,
            "RETRIEVER_READ_TOKEN": ctx.secrets.retriever_token,
            "RETRIEVER_STORE": "edge",  # Qdrant Edge in-process: the embedded default
            "RETRIEVER_DATA_DIR": str(ctx.state / "retriever"),
        },
        ready_timeout_s=300.0,  # loading torch and the embedding model takes a while on a busy laptop
    )


def _feedback_env(ctx: PlatformContext) -> dict[str, str]:
    """The feedback service and its evaluation worker read the same settings."""
    judge_key = os.environ.get("FEEDBACK_EVAL_JUDGE_KEY") or ctx.secrets.judge_key
    return {
        "FEEDBACK_ADMIN_TOKEN": ctx.secrets.admin_token,
        "FEEDBACK_INGEST_TOKEN": ctx.secrets.ingest_token,
        "FEEDBACK_DATABASE_URL": f"sqlite+aiosqlite:///{ctx.state / 'feedback.db'}",
        # The closed loop acts on the gateway's routes, the registry's aliases and the trainer's jobs.
        "FEEDBACK_GATEWAY_URL": f"http://127.0.0.1:{ctx.ports['gateway']}",
        "FEEDBACK_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ctx.ports['mlflow']}",
        "FEEDBACK_TRAINER_URL": f"http://127.0.0.1:{ctx.ports['trainer']}",  # retraining from feedback
        # Whether inference serves a new adapter yet is asked at its /v1/models, with its serving token.
        "FEEDBACK_INFERENCE_SERVING_TOKEN": ctx.secrets.serving_token,
        # Evaluation: the workers judge through the gateway with the bundled model's route, with a gateway key of
        # their own: FEEDBACK_EVAL_JUDGE_KEY from the environment of `llmops up`, else the one it created (secrets).
        "FEEDBACK_EVAL_REDIS_URL": ctx.redis_url,
        "FEEDBACK_EVAL_JUDGE_ROUTE": os.environ.get("FEEDBACK_EVAL_JUDGE_ROUTE", DEFAULT_ROUTE),
        "FEEDBACK_EVAL_WORKER_PORT": str(ctx.ports["evaluation_worker"]),
        **({"FEEDBACK_EVAL_JUDGE_KEY": judge_key} if judge_key else {}),
    }


def feedback_spec(ctx: PlatformContext) -> ServiceSpec:
    port = ctx.ports["feedback"]
    return ServiceSpec(
        name="feedback",
        argv=uvicorn_argv("llmops_feedback.app:create_app", port),
        port=port,
        env={
            **_feedback_env(ctx),
            "FEEDBACK_HOST": "127.0.0.1",
            "FEEDBACK_PORT": str(port),
            "FEEDBACK_EXPERIMENT_INTERVAL_S": os.environ.get("FEEDBACK_EXPERIMENT_INTERVAL_S", LOCAL_LOOP_INTERVAL_S),
        },
    )


def evaluation_worker_spec(ctx: PlatformContext) -> ServiceSpec:
    """Scorers and judges in the background; more workers may join the same Redis queue."""
    return ServiceSpec(
        name="evaluation_worker",
        argv=[sys.executable, "-m", "llmops_feedback.evaluation.worker"],
        port=ctx.ports["evaluation_worker"],
        env=_feedback_env(ctx),
    )


def mlflow_argv(state: Path, port: int, host: str = "127.0.0.1") -> list[str]:
    """An MLflow tracking server with a SQLite store and artifacts proxied from a local directory."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{state / 'mlflow.db'}",
        "--artifacts-destination",
        str(state / "mlflow-artifacts"),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


# MLflow's job runner (a pool of consumer processes) serves features the platform does not use.
MLFLOW_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_spec(ctx: PlatformContext) -> ServiceSpec:
    port = ctx.ports["mlflow"]
    return ServiceSpec(
        name="mlflow", argv=mlflow_argv(ctx.state, port), port=port, env=MLFLOW_ENV, ready_path=READY_PATHS["mlflow"]
    )


def inference_spec(ctx: PlatformContext) -> ServiceSpec:
    port = ctx.ports["inference"]
    return ServiceSpec(
        name="inference",
        argv=uvicorn_argv("llmops_inference.app:create_app", port),
        port=port,
        env={
            "INFERENCE_HOST": "127.0.0.1",
            "INFERENCE_PORT": str(port),
            "INFERENCE_ADMIN_TOKEN": ctx.secrets.admin_token,
            INFERENCE_TOKEN_ENV: ctx.secrets.serving_token,  # /v1/*: only the gateway and the feedback service
            "INFERENCE_STATE_DIR": str(ctx.state / "inference"),
            "INFERENCE_VLLM_PORT": str(ctx.ports["vllm"]),
            "INFERENCE_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ctx.ports['mlflow']}",
            "INFERENCE_SYNC_INTERVAL_S": os.environ.get("INFERENCE_SYNC_INTERVAL_S", LOCAL_LOOP_INTERVAL_S),
        },
        ready_timeout_s=900.0,  # a first start converts the bundled model, then vLLM loads it (about a minute on CPU)
    )


def _trainer_env(ctx: PlatformContext) -> dict[str, str]:
    """The trainer's API and its worker read the same settings."""
    return {
        "TRAINER_ADMIN_TOKEN": ctx.secrets.admin_token,
        "TRAINER_DATABASE_URL": f"sqlite+aiosqlite:///{ctx.state / 'trainer.db'}",
        "TRAINER_REDIS_URL": ctx.redis_url,
        "TRAINER_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ctx.ports['mlflow']}",
        "TRAINER_FEEDBACK_URL": f"http://127.0.0.1:{ctx.ports['feedback']}",
        "TRAINER_FEEDBACK_TOKEN": ctx.secrets.admin_token,  # the feedback service's admin token: its exports
        "TRAINER_WORK_DIR": str(ctx.state / "trainer"),
        "TRAINER_WORKER_PORT": str(ctx.ports["trainer_worker"]),
        # vLLM serves on the same CPU cores: half of them for training keeps both from thrashing.
        "TRAINER_TORCH_THREADS": str(max(1, (os.cpu_count() or 2) // 2)),
    }


def trainer_spec(ctx: PlatformContext) -> ServiceSpec:
    port = ctx.ports["trainer"]
    return ServiceSpec(
        name="trainer",
        argv=uvicorn_argv("llmops_trainer.app:create_app", port),
        port=port,
        env={**_trainer_env(ctx), "TRAINER_HOST": "127.0.0.1", "TRAINER_PORT": str(port)},
    )


def trainer_worker_spec(ctx: PlatformContext) -> ServiceSpec:
    """One Celery worker, one job at a time; more workers (other machines, GPUs) may join the same Redis queue."""
    return ServiceSpec(
        name="trainer_worker",
        argv=[sys.executable, "-m", "llmops_trainer.worker"],
        port=ctx.ports["trainer_worker"],
        env=_trainer_env(ctx),
        ready_timeout_s=300.0,  # it imports torch and transformers before it consumes
    )


def platform_services(ctx: PlatformContext) -> list[ServiceSpec]:
    """Every service ``llmops up`` runs, in start order."""
    return [
        mlflow_spec(ctx),
        inference_spec(ctx),
        feedback_spec(ctx),
        evaluation_worker_spec(ctx),
        retriever_spec(ctx),
        gateway_spec(ctx),
        trainer_spec(ctx),
        trainer_worker_spec(ctx),
        batch_worker_spec(ctx),
    ]
