"""A real MLflow tracking server (SQLite store, proxied local artifacts) for tests and benchmarks, and a helper
that registers a PEFT adapter the way the trainer does: logged as run artifacts, then a model version + alias."""

import os
from pathlib import Path

from llmops_cli.procs import free_port, log_tail, spawn, stop_processes
from llmops_cli.services import MLFLOW_ENV, mlflow_argv
from llmops_common.contracts.adapters import ADAPTER_TAG, ADAPTER_TAG_VALUE
from llmops_testkit.processes import wait_ready

ADAPTER_TAGS = {ADAPTER_TAG: ADAPTER_TAG_VALUE}  # what the inference service's registry sync looks for


class MlflowServer:
    def __init__(self, state_dir: Path, *, port: int | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.log_path = self.state_dir / "mlflow.log"
        self.process = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 120.0, wait: bool = True) -> "MlflowServer":
        """Starts (or restarts, on the same port and store) the server and waits for ``/health``; with ``wait=False``
        returns at once (call ``wait_ready`` later: two servers then start side by side)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **MLFLOW_ENV}
        self.process = spawn(
            mlflow_argv(self.state_dir, self.port),
            log_path=self.log_path,
            env=env,
            cwd=self.state_dir,
            die_with_parent=True,
        )
        return self.wait_ready(timeout_s=timeout_s) if wait else self

    def wait_ready(self, *, timeout_s: float = 120.0) -> "MlflowServer":
        try:
            wait_ready(f"{self.url}/health", timeout_s=timeout_s, process=self.process)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"MLflow did not start: {log_tail(self.log_path)}") from exc
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_processes([self.process], timeout_s=10)
            self.process = None

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)

    def register_adapter(self, name: str, adapter_dir: Path, *, alias: str | None = None) -> str:
        """Logs ``adapter_dir`` as a run's artifacts, registers it as a new version of the adapter model ``name``
        (created, tagged, if needed) and points ``alias`` at it. Returns the version."""
        import mlflow
        from mlflow.exceptions import MlflowException

        client = self.client()
        experiment = client.get_experiment_by_name("adapters") or client.get_experiment(
            client.create_experiment("adapters")
        )
        run = client.create_run(experiment.experiment_id, run_name=f"{name}-adapter")
        mlflow.set_tracking_uri(self.url)
        client.log_artifacts(run.info.run_id, str(adapter_dir), "adapter")
        client.set_terminated(run.info.run_id)
        try:
            client.create_registered_model(name, tags=ADAPTER_TAGS)
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                raise
        # register_model("runs:/...") wants a logged model in MLflow 3; a version with the artifact URI as source works.
        version = client.create_model_version(name, source=f"{run.info.artifact_uri}/adapter", run_id=run.info.run_id)
        if alias:
            client.set_registered_model_alias(name, alias, version.version)
        return str(version.version)
