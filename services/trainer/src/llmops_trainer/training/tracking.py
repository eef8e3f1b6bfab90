"""A job's MLflow run and its registration, following the adapter registry contract
(``llmops_common.contracts.adapters``): a registered model tagged ``llmops.kind=lora-adapter``, whose version
``source`` is the artifact URI of a PEFT adapter directory, served by inference as ``<model>@<alias>`` for each
alias."""

import logging
import re
import time
from pathlib import Path

from llmops_common.contracts.adapters import ADAPTER_TAG, ADAPTER_TAG_VALUE

logger = logging.getLogger(__name__)

JOB_TAG = "llmops.job_id"
BASE_MODEL_TAG = "llmops.base_model"
DATASET_TAG = "llmops.dataset_sha256"
_SERVER_ERROR = re.compile(r"failed with error code 5\d\d")


class RegistryConflict(RuntimeError):
    """The registered model exists and is not a LoRA adapter model: registering into it would be wrong (final)."""


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: MLflow unreachable, timing out or answering 5xx."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    try:
        import requests

        if isinstance(exc, requests.ConnectionError | requests.Timeout):
            return True
    except ImportError:
        pass
    if isinstance(exc, MlflowException):
        message = str(exc)
        return (
            exc.error_code == "TEMPORARILY_UNAVAILABLE"
            or "failed with exception" in message
            or bool(_SERVER_ERROR.search(message))
        )
    return False


def experiment_name(model_name: str) -> str:
    return f"trainer/{model_name}"


class Tracker:
    """Blocking MLflow calls for one job attempt; called from the training thread."""

    def __init__(self, tracking_uri: str, *, job_id: str, model_name: str) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.job_id, self.model_name = job_id, model_name
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self._pending: list = []
        self._flushed_at = time.monotonic()

    def start(self, *, params: dict, tags: dict, previous_run_id: str | None) -> tuple[str, str]:
        """The job's run in the model's experiment (created on first use). An earlier attempt's run is closed as
        FAILED: its worker died and cannot close it."""
        from mlflow.exceptions import MlflowException

        name = experiment_name(self.model_name)
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                self.experiment_id = self.client.create_experiment(name, tags={"llmops.model_name": self.model_name})
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another job created it meanwhile
                    raise
                self.experiment_id = self.client.get_experiment_by_name(name).experiment_id
        else:
            self.experiment_id = experiment.experiment_id
        if previous_run_id:
            try:
                if self.client.get_run(previous_run_id).info.status == "RUNNING":
                    self.client.set_terminated(previous_run_id, "FAILED")
            except MlflowException as exc:
                if is_transient(exc):
                    raise
        run = self.client.create_run(self.experiment_id, run_name=self.job_id, tags={JOB_TAG: self.job_id, **tags})
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])
        return self.experiment_id, self.run_id

    def metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending.extend(Metric(k, v, now, step) for k, v in values.items())
        if time.monotonic() - self._flushed_at > 2.0:
            self.flush(strict=False)

    def flush(self, *, strict: bool = True) -> None:
        """Sends buffered metrics. Not ``strict``: an MLflow blip mid-training keeps them buffered for later."""
        while self._pending:
            batch = self._pending[:1000]
            try:
                self.client.log_batch(self.run_id, metrics=batch)
            except Exception as exc:
                if strict or not is_transient(exc):
                    raise
                logger.warning("MLflow metric logging failed; kept for later", extra={"error": repr(exc)})
                break
            del self._pending[: len(batch)]
        self._flushed_at = time.monotonic()

    def publish(self, adapter_dir: Path, *, alias: str | None, version_tags: dict) -> str:
        """Logs the adapter directory as the run's ``adapter`` artifact, registers it as a new version (once per
        job: a retry after a crash finds the version it made) and points ``alias`` at it. Returns the version."""
        from mlflow.exceptions import MlflowException

        self.flush()
        self.client.log_artifacts(self.run_id, str(adapter_dir), "adapter")
        self._ensure_adapter_model()
        existing = self.client.search_model_versions(
            f"name = '{self.model_name}' and tags.`{JOB_TAG}` = '{self.job_id}'"
        )
        if existing:
            version = existing[0]
        else:
            source = f"{self.client.get_run(self.run_id).info.artifact_uri}/adapter"
            version = self.client.create_model_version(
                self.model_name,
                source=source,
                run_id=self.run_id,
                tags={JOB_TAG: self.job_id, **version_tags},
                description=f"LoRA adapter trained by {self.job_id}",
            )
        deadline = time.monotonic() + 60
        while version.status == "PENDING_REGISTRATION" and time.monotonic() < deadline:
            time.sleep(0.5)
            version = self.client.get_model_version(self.model_name, version.version)
        if version.status != "READY":
            raise MlflowException(f"model version {version.version} is {version.status}, not READY")
        if alias:
            self.client.set_registered_model_alias(self.model_name, alias, version.version)
        return str(version.version)

    def _ensure_adapter_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(self.model_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            try:
                self.client.create_registered_model(self.model_name, tags={ADAPTER_TAG: ADAPTER_TAG_VALUE})
                return
            except MlflowException as race:
                if race.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                model = self.client.get_registered_model(self.model_name)
        kind = (model.tags or {}).get(ADAPTER_TAG)
        if kind != ADAPTER_TAG_VALUE:
            raise RegistryConflict(
                f"registered model {self.model_name!r} exists with {ADAPTER_TAG}={kind!r}, not a LoRA adapter model; "
                "choose another model name"
            )

    def end(self, status: str) -> None:
        """FINISHED, FAILED or KILLED (cancelled); best effort for the last two."""
        if self.run_id is None:
            return
        try:
            if status != "FINISHED":
                self.flush(strict=False)
            self.client.set_terminated(self.run_id, status)
        except Exception as exc:
            if status == "FINISHED":
                raise
            logger.warning("could not close the MLflow run", extra={"run_id": self.run_id, "error": repr(exc)})
