"""Feedback settings, all from ``FEEDBACK_*`` environment variables."""

from pydantic import Field

from llmops_common.settings import StoreSettings, require_secret, service_config

DEV_ADMIN_TOKEN = "dev-admin-token"
DEV_INGEST_TOKEN = "dev-ingest-token"


class FeedbackSettings(StoreSettings):
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
    # The inference service's serving token: a new adapter counts as served once the upstream lists it, asked with
    # this token where the route's variant names INFERENCE_SERVING_TOKEN in ``api_key_env`` (only there: it is never
    # sent to another upstream).
    inference_serving_token: str | None = None
    experiment_interval_s: float = Field(default=30.0, gt=0)
    experiment_controller: bool = True  # False: this replica never decides (the API still works)

    # Evaluation: scorers run on Celery workers (``python -m llmops_feedback.evaluation.worker``) fed through this
    # Redis; without it scoring is off (the API answers 503, experiments have no judge score).
    eval_redis_url: str | None = None
    eval_queue: str = "llmops-evaluation"
    eval_redis_key_prefix: str = "llmops-eval:"
    # The judge: a gateway route (any: a strong model in production, the bundled one locally) asked with a gateway
    # API key of its own, so its quota and budget bound what judging may spend.
    eval_judge_route: str | None = None
    eval_judge_key: str | None = None
    eval_judge_attempts: int = Field(default=3, ge=1, le=10)  # answers without a score are asked again
    eval_judge_max_tokens: int = Field(default=96, ge=8, le=4096)
    eval_judge_structured: bool = True  # ask for JSON-schema output (vLLM supports it); False for upstreams that do not
    eval_judge_timeout_s: float = Field(default=120.0, gt=0)
    # A judge route that cannot be asked (429 over its key's quota, upstream down) is asked again later, after
    # its Retry-After or a growing backoff, this many times; then the judgement is stored as failed with the reason.
    eval_judge_retries: int = Field(default=5, ge=0, le=20)
    eval_worker_concurrency: int = Field(default=2, ge=1)
    eval_worker_host: str = "127.0.0.1"
    eval_worker_port: int = 8015
    # Online scoring: this share of answered live requests (chosen by a hash of the request id) is scored in the
    # background with these rubrics, looked for every interval among the requests of the trailing window.
    eval_sample_rate: float = Field(default=0.0, ge=0, le=1)
    eval_online_rubrics: list[str] = Field(default_factory=lambda: ["helpfulness"])  # JSON in the env
    eval_sample_interval_s: float = Field(default=30.0, gt=0)
    eval_sample_window_s: float = Field(default=3600.0, gt=0)

    def admin_token_value(self) -> str:
        return require_secret(
            self.admin_token, name="FEEDBACK_ADMIN_TOKEN", dev_mode=self.dev_mode, dev_default=DEV_ADMIN_TOKEN
        )

    def ingest_token_value(self) -> str:
        return require_secret(
            self.ingest_token, name="FEEDBACK_INGEST_TOKEN", dev_mode=self.dev_mode, dev_default=DEV_INGEST_TOKEN
        )
