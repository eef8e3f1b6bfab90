"""Trainer settings, all from ``TRAINER_*`` environment variables. The job API and the worker read the same ones."""

from pathlib import Path

from pydantic import Field

from llmops_common.contracts.models import BUNDLED_MODEL_NAME
from llmops_common.settings import StoreSettings, require_secret, service_config
from llmops_models import prepare

DEV_ADMIN_TOKEN = "dev-trainer-admin-token"
# The feedback service's development admin token: in dev mode the trainer can read its exports out of the box.
DEV_FEEDBACK_TOKEN = "dev-admin-token"


class TrainerSettings(StoreSettings):
    model_config = service_config("TRAINER_")

    port: int = 8003
    admin_token: str | None = None
    database_url: str = "sqlite+aiosqlite:///./.llmops/trainer.db"

    # --- Celery: Redis is the broker and the result backend ---
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Every key Celery writes (queues, unacked messages, results) starts with this: several platforms (or test
    # sessions) can share one Redis without seeing each other's jobs.
    redis_key_prefix: str = "llmops:trainer:"
    queue: str = "trainer"
    # An unacknowledged job message comes back after this long. Redelivering a job that still runs is harmless (a
    # worker only starts a job that is queued, or running with a stale heartbeat); the heartbeat reaper below is
    # what recovers a lost worker's job quickly.
    visibility_timeout_s: int = Field(default=3600, ge=10)

    # --- the job lifecycle ---
    heartbeat_interval_s: float = Field(default=2.0, gt=0)  # also how often a worker looks for a cancel request
    heartbeat_timeout_s: float = Field(default=60.0, gt=0)  # a running job silent this long has lost its worker
    reaper_interval_s: float = Field(default=10.0, gt=0)
    # --- metrics: job statistics are read from the database this often; a finished job's loss stays this long ---
    metrics_refresh_s: float = Field(default=10.0, gt=0)
    metrics_recent_s: float = Field(default=3600.0, ge=0)
    max_attempts: int = Field(default=3, ge=1)  # starts of one job: a lost worker or a transient failure uses one
    retry_backoff_s: float = Field(default=10.0, ge=0)  # before a retry after a transient failure; doubles
    retry_backoff_max_s: float = Field(default=300.0, ge=0)

    # --- datasets ---
    max_dataset_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_examples: int = Field(default=200_000, ge=1)
    feedback_url: str = "http://127.0.0.1:8004"
    # The feedback service's admin token (its dataset export needs it). Unset outside dev mode: the feedback source
    # is refused with a clear error rather than sent unauthenticated.
    feedback_token: str | None = None
    feedback_timeout_s: float = Field(default=120.0, gt=0)

    # --- models ---
    # Base models a job may name, besides the bundled one: name -> local checkpoint directory or Hugging Face id.
    # The adapter only works on the base model the inference service serves; name it the same way.
    base_models: dict[str, str] = Field(default_factory=dict)
    model_cache_dir: Path = Field(default_factory=prepare.default_cache_dir)

    # --- the worker ---
    mlflow_tracking_uri: str = "http://127.0.0.1:5000"
    # MLflow's client defaults (120 s timeout, 7 retries with back-off) would hold a job for many minutes while the
    # server is down; the job retries itself instead (max_attempts, retry_backoff_s).
    mlflow_timeout_s: int = Field(default=30, ge=1)
    mlflow_max_retries: int = Field(default=2, ge=0)
    work_dir: Path = Path("./.llmops/trainer")  # scratch space of running jobs
    device: str = Field(default="auto", pattern="^(auto|cpu|cuda)$")
    # CPU threads of a training process; 0: torch's default (one per core). On a machine whose cores other busy
    # processes share (vLLM on CPU, a laptop), fewer threads are faster: OpenMP threads that wait on each other
    # while one of them is descheduled can make a step ten times slower.
    torch_threads: int = Field(default=0, ge=0)
    worker_concurrency: int = Field(default=1, ge=1)  # jobs at once per worker: a GPU trains one at a time
    # A fresh process per job gives back everything a job held (CUDA context, allocator caches, fragmentation).
    worker_max_jobs_per_child: int = Field(default=1, ge=0)  # 0: reuse the process
    worker_host: str = "127.0.0.1"
    worker_port: int = 8013  # the worker's /healthz, /readyz and /metrics

    def admin_token_value(self) -> str:
        return require_secret(
            self.admin_token, name="TRAINER_ADMIN_TOKEN", dev_mode=self.dev_mode, dev_default=DEV_ADMIN_TOKEN
        )

    def feedback_token_value(self) -> str | None:
        return self.feedback_token or (DEV_FEEDBACK_TOKEN if self.dev_mode else None)

    def base_model_names(self) -> list[str]:
        return [BUNDLED_MODEL_NAME, *self.base_models]

    def resolve_base_model(self, name: str) -> str:
        """Where a base model's weights are: the bundled checkpoint (prepared on first use) or a configured source."""
        if name in self.base_models:
            return self.base_models[name]
        if name == BUNDLED_MODEL_NAME:
            return str(prepare.bundled_model_dir(self.model_cache_dir))
        raise KeyError(name)
