"""Feedback settings, all from ``FEEDBACK_*`` environment variables."""

from pydantic import Field

from llmops_common.settings import ServiceSettings, require_secret, service_config

DEV_ADMIN_TOKEN = "dev-admin-token"
DEV_INGEST_TOKEN = "dev-ingest-token"


class FeedbackSettings(ServiceSettings):
    model_config = service_config("FEEDBACK_")

    port: int = 8004
    # The admin token reads everything (summaries, exports) and rates any request. The ingest token is the
    # gateway's: it writes request records and rates on behalf of the key that made the request.
    admin_token: str | None = None
    ingest_token: str | None = None
    database_url: str = "sqlite+aiosqlite:///./.llmops/feedback.db"

    # False: prompts and answers are not stored (only their metadata); such requests cannot become training data.
    store_text: bool = True
    max_batch: int = 1000

    # A key's rating of a request whose record has not arrived yet waits this long for it (the gateway delivers
    # records moments after the answer, or after an outage from its spool), then is discarded and counted.
    pending_rating_ttl_s: float = Field(default=86_400.0, gt=0)
    pending_sweep_s: float = Field(default=60.0, gt=0)

    # The Prometheus quality gauges describe this trailing window, recomputed every refresh.
    quality_window_s: float = 86_400.0
    quality_refresh_s: float = 15.0

    # Experiments: the controller sets route splits through the gateway's admin API (with the platform's admin
    # token unless FEEDBACK_GATEWAY_ADMIN_TOKEN says otherwise) and moves aliases in the MLflow registry.
    gateway_url: str | None = None
    gateway_admin_token: str | None = None
    mlflow_tracking_uri: str | None = None
    # Retraining from feedback: jobs are submitted to the trainer's API (the platform's admin token unless
    # FEEDBACK_TRAINER_TOKEN says otherwise).
    trainer_url: str | None = None
    trainer_token: str | None = None
    experiment_interval_s: float = Field(default=30.0, gt=0)
    experiment_controller: bool = True  # False: this replica never decides (the API still works)

    def admin_token_value(self) -> str:
        return require_secret(
            self.admin_token, name="FEEDBACK_ADMIN_TOKEN", dev_mode=self.dev_mode, dev_default=DEV_ADMIN_TOKEN
        )

    def ingest_token_value(self) -> str:
        return require_secret(
            self.ingest_token, name="FEEDBACK_INGEST_TOKEN", dev_mode=self.dev_mode, dev_default=DEV_INGEST_TOKEN
        )
