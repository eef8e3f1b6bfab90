"""Gateway settings, all from ``GATEWAY_*`` environment variables."""

from enum import StrEnum

from pydantic import Field, model_validator

from llmops_common.settings import ServiceSettings, require_secret, service_config

DEV_ADMIN_TOKEN = "dev-admin-token"
DEV_KEY_SECRET = "dev-key-hash-secret"


class QuotaFailureMode(StrEnum):
    closed = "closed"  # refuse requests that have limits when Redis is unreachable (503)
    open = "open"  # serve them unmetered, logged and counted


class RequestLogSinkKind(StrEnum):
    feedback = "feedback"  # the feedback service, spooled on disk while it is down
    jsonl = "jsonl"  # a local file
    none = "none"


class BatchEngine(StrEnum):
    """What runs a batch worker's chat lines: the serving pods through the gateway, or vLLM's offline engine on
    the worker itself (batched: far cheaper per token on a GPU)."""

    serving = "serving"
    vllm = "vllm"


class GatewaySettings(ServiceSettings):
    model_config = service_config("GATEWAY_")

    port: int = 8000

    # Secrets. Outside dev mode both must be set and not the development defaults.
    admin_token: str | None = None
    key_secret: str | None = Field(default=None, description="HMAC secret for hashing API keys at rest")
    # A rotation of key_secret without downtime (SECURITY.md): keys and admin identity tokens stored under one of
    # these are still accepted, and stored again under key_secret when next used.
    key_secrets_previous: str | None = Field(
        default=None, description="earlier key-hashing secrets, comma-separated, accepted during a rotation"
    )

    database_url: str = "sqlite+aiosqlite:///./.llmops/gateway.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_key_prefix: str = "llmops:gw:"
    quota_failure_mode: QuotaFailureMode = QuotaFailureMode.closed
    # A busy key's quota is taken from Redis this many seconds of its traffic at a time (at most 1/100 of a
    # limit) and spent locally; 0: every request with limits checks Redis (see quotas/plan.py).
    quota_lease_s: float = Field(default=0.1, ge=0, le=10)

    # Repeated bad credentials (API keys, the console's sign-in): past this many failures in a window a client
    # address, or a displayed key prefix (a distributed guess at one key), gets 429 too_many_failed_auth until the
    # window ends. Counted in Redis (shared by replicas); GATEWAY_QUOTA_FAILURE_MODE says what happens without it
    # (keys/lockout.py). 0 turns a limit off.
    auth_failure_limit: int = Field(default=20, ge=0)
    auth_failure_prefix_limit: int = Field(default=50, ge=0)
    auth_failure_window_s: int = Field(default=60, ge=1, le=86400)
    # Addresses of the load balancers in front of the gateway: their X-Forwarded-For names the client whose failures
    # are counted. Unset behind a balancer, all its clients share one address (and one count).
    trusted_proxies: list[str] = Field(default_factory=list)

    # Spend and budgets: amounts in this currency (ISO 4217 code, shown beside amounts; no conversion).
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    # Spend is summed in memory and written to SQL this often (one upsert per hour, key, route, variant, price).
    spend_flush_interval_s: float = Field(default=2.0, gt=0, le=60)
    # A budget used past this share sets off the alert (Prometheus rule on llmops_gateway_budget_used_ratio) and,
    # when a URL is set, one POST per budget and period to the webhook.
    budget_alert_share: float = Field(default=0.8, gt=0, le=1)
    budget_alert_webhook_url: str | None = Field(default=None, pattern=r"^https?://", description="never logged")

    # A key or route change is seen by every replica within these many seconds.
    key_cache_ttl_s: float = 0.5
    route_cache_ttl_s: float = 1.0

    # Token reservation: prompt estimate + max_tokens, or this when the client gives no max_tokens.
    default_max_tokens_reserve: int = 512

    max_body_bytes: int = 4 * 1024 * 1024
    upstream_connect_timeout_s: float = 5.0
    upstream_read_timeout_s: float = 120.0  # longest silence allowed between upstream bytes
    # Longest an upstream answer may take from request to last byte: an upstream that keeps sending and never ends
    # its stream would otherwise hold the connection (and the client) for ever. 0: no limit.
    upstream_answer_timeout_s: float = Field(default=900.0, ge=0)
    # What an upstream (model server, embedding upstream, the retriever) may send back; past a limit the gateway stops
    # reading, closes the connection and counts a failure of the upstream (502 upstream_response_too_large, or an SSE
    # error event). A whole answer is held in memory to be checked and accounted: 16 MiB is 4x the request limit and
    # far above a chat answer (32k tokens are about 150 KB; about 2 KB a token with top-20 logprobs). An SSE event is
    # one token's chunk (a few hundred bytes; a few KB with logprobs) or the usage chunk. A stream is relayed as it
    # arrives, but the answer text is kept for the request log: 64 MiB is about 250k tokens of vLLM's chunks.
    upstream_max_answer_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    upstream_max_event_bytes: int = Field(default=1024 * 1024, ge=1024)
    upstream_max_stream_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    upstream_max_connections: int = 1000  # upstream requests in flight at once (each holds a connection)
    # https upstreams are verified against the system's CAs (SSL_CERT_FILE/SSL_CERT_DIR) and these, e.g. a private CA.
    # Upstream requests honour HTTP_PROXY, HTTPS_PROXY and NO_PROXY from the environment.
    upstream_ca_bundle: str | None = Field(default=None, description="PEM file of extra CAs for https upstreams")

    breaker_failure_threshold: int = 5  # consecutive failures that open a variant's circuit
    breaker_cooldown_s: float = 30.0  # how long it stays open before one trial request

    request_log_sink: RequestLogSinkKind = RequestLogSinkKind.jsonl
    request_log_path: str = "./.llmops/request-log.jsonl"
    request_log_queue_size: int = 10000
    # The feedback service: where request records go (sink "feedback") and ratings are forwarded.
    feedback_url: str | None = None
    feedback_token: str | None = Field(default=None, description="the feedback service's ingest token")
    # Request records, and ratings (with sink "feedback"), wait here while the feedback service is down.
    spool_dir: str = "./.llmops/spool"
    # How long a client's rating waits for the feedback service before it is spooled instead (and answered 202).
    feedback_rating_timeout_s: float = Field(default=3.0, gt=0)
    # The retriever: where RAG requests get their context. Unset: a request with "rag" gets 400 rag_unavailable.
    retriever_url: str | None = None
    retriever_token: str | None = Field(default=None, description="the retriever's read token")
    retriever_timeout_s: float = 10.0  # a search embeds the question on CPU first
    # POST /v1/embeddings: a model named here and by no route goes to the retriever's own embedding model(s).
    # A route of the same name wins (any OpenAI-compatible embedding upstream, e.g. vLLM with an embedding model).
    retriever_embedding_models: list[str] = Field(default_factory=lambda: ["all-MiniLM-L6-v2"])

    # Files and batches (OpenAI's Files and Batches API). Contents live in an object store: a directory (one machine)
    # or s3://bucket/prefix (S3 or S3-compatible, needs s3fs; credentials from AWS_* variables).
    files_url: str = "./.llmops/files"
    files_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1)  # an upload over this is 413
    batch_max_lines: int = Field(default=50_000, ge=1)  # requests in one batch input file
    batch_shard_lines: int = Field(default=100, ge=1)  # lines per shard: one Celery task each
    # Batch workers send each line through this gateway (its keys, quotas, routes, request log) with this token and
    # the batch's key id. Unset: the gateway accepts no batch lines (batches stay queued).
    batch_token: str | None = Field(default=None, description="shared by the gateway and its batch workers")
    batch_gateway_url: str = "http://127.0.0.1:8000"
    batch_queue: str = "llmops-batch"  # the Celery queue on the Redis broker (GATEWAY_REDIS_URL)
    # Low priority: requests in flight per shard, and shards per worker process. Interactive traffic keeps the
    # rest of the serving capacity.
    batch_line_concurrency: int = Field(default=4, ge=1, le=256)
    batch_worker_concurrency: int = Field(default=2, ge=1)
    batch_lease_s: float = Field(default=30.0, gt=0)  # a shard whose worker is silent this long is run again
    batch_dispatch_interval_s: float = Field(default=1.0, gt=0)
    # A batch left `finalizing` this long was abandoned by a dead worker: another one writes its files again. Longer
    # than writing a batch's output and error files takes, or a slow finalisation is done twice (harmlessly: the files
    # have fixed ids and the same lines).
    batch_finalize_stale_s: float = Field(default=60.0, gt=0)
    batch_retry_limit: int = Field(default=5, ge=0)  # tries of a line the upstream failed (5xx, timeout)
    # vLLM's request priority for batch lines (higher runs later), where the model servers run vLLM with
    # `--scheduling-policy priority` (inference: INFERENCE_EXTRA_ARGS); unset: no priority field is sent (a vLLM
    # without that policy refuses one).
    batch_priority: int | None = None
    # A batch worker's own engine. vllm: chat lines whose route chooses a variant serving one of
    # batch_engine_served_names run on vLLM's offline engine in the worker (one process: its pool is solo), in
    # batched chunks of batch_engine_chunk_lines (cancel and checkpoints between chunks); the gateway still admits
    # and accounts for each (keys, quotas, routes, request log). Other lines go through the gateway as with serving.
    batch_engine: BatchEngine = BatchEngine.serving
    batch_engine_model: str | None = None  # a model directory or Hugging Face id; required with vllm
    batch_engine_served_names: list[str] = Field(default_factory=list)  # default: the model's last path part
    batch_engine_chunk_lines: int = Field(default=64, ge=1, le=1024)
    # vllm.LLM's keyword arguments, JSON: e.g. {"gpu_memory_utilization": 0.9, "max_model_len": 8192}.
    batch_engine_args: dict = Field(default_factory=dict)
    # A batch worker's health and metrics endpoints (/healthz, /readyz, /metrics).
    batch_worker_host: str = "127.0.0.1"
    batch_worker_port: int = 8014

    # The web console at /console/ (sign-in sessions live in Redis).
    console_enabled: bool = True
    console_session_ttl_s: int = Field(default=8 * 3600, ge=60, le=30 * 86400)
    # Mark the session cookie Secure: set it wherever the console is reached over https (behind an ingress).
    console_secure_cookie: bool = False
    # Failed console sign-ins from one client address within the window; beyond them sign-in is refused (429).
    console_signin_max_failures: int = Field(default=10, ge=1, le=10_000)
    console_signin_window_s: int = Field(default=300, ge=1, le=86400)
    # Behind an ingress every connection comes from the ingress: name the header it appends the client's address
    # to (e.g. x-forwarded-for; its last entry is used), or one guesser locks everyone out of the sign-in.
    console_client_ip_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    # The feedback service's admin token: the console reads the request log, quality and experiments with it.
    feedback_admin_token: str | None = Field(default=None, description="the feedback service's admin token")
    # The console's training page: the trainer's job API (with its admin token) and MLflow's registry.
    trainer_url: str | None = None
    trainer_admin_token: str | None = Field(default=None, description="the trainer's admin token")
    mlflow_url: str | None = None  # also the prompt registry routes' `prompts:/` references resolve in
    # A moved prompt alias reaches every replica within about this time; MLflow is asked once per reference per period.
    prompt_cache_ttl_s: float = Field(default=30.0, gt=0, le=3600)
    # The retriever's admin token: the console's upload form (unset: collections are read-only in the console).
    retriever_admin_token: str | None = Field(default=None, description="the retriever's admin token")
    retriever_upload_timeout_s: float = Field(default=300.0, gt=0)  # a PDF is parsed and embedded on CPU

    @model_validator(mode="after")
    def _feedback_configured(self) -> "GatewaySettings":
        if (self.request_log_sink is RequestLogSinkKind.feedback or self.feedback_url) and not (
            self.feedback_url and self.feedback_token
        ):
            raise ValueError("the feedback service needs both GATEWAY_FEEDBACK_URL and GATEWAY_FEEDBACK_TOKEN")
        if self.retriever_url and not self.retriever_token:
            raise ValueError("the retriever needs both GATEWAY_RETRIEVER_URL and GATEWAY_RETRIEVER_TOKEN")
        if self.batch_engine is BatchEngine.vllm and not self.batch_engine_model:
            raise ValueError("GATEWAY_BATCH_ENGINE=vllm needs GATEWAY_BATCH_ENGINE_MODEL")
        return self

    def admin_token_value(self) -> str:
        return require_secret(
            self.admin_token, name="GATEWAY_ADMIN_TOKEN", dev_mode=self.dev_mode, dev_default=DEV_ADMIN_TOKEN
        )

    def key_secret_value(self) -> str:
        return require_secret(
            self.key_secret, name="GATEWAY_KEY_SECRET", dev_mode=self.dev_mode, dev_default=DEV_KEY_SECRET
        )

    def previous_key_secrets(self) -> tuple[str, ...]:
        """The earlier key secrets still accepted; each held to the same rules as the current one."""
        given = [s.strip() for s in (self.key_secrets_previous or "").split(",") if s.strip()]
        return tuple(
            require_secret(s, name="GATEWAY_KEY_SECRETS_PREVIOUS", dev_mode=self.dev_mode, dev_default=DEV_KEY_SECRET)
            for s in given
        )
