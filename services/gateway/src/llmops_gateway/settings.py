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


class GatewaySettings(ServiceSettings):
    model_config = service_config("GATEWAY_")

    port: int = 8000

    # Secrets. Outside dev mode both must be set and not the development defaults.
    admin_token: str | None = None
    key_secret: str | None = Field(default=None, description="HMAC secret for hashing API keys at rest")

    database_url: str = "sqlite+aiosqlite:///./.llmops/gateway.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_key_prefix: str = "llmops:gw:"
    quota_failure_mode: QuotaFailureMode = QuotaFailureMode.closed
    # A busy key's quota is taken from Redis this many seconds of its traffic at a time (at most 1/100 of a
    # limit) and spent locally; 0: every request with limits checks Redis (see quotas/plan.py).
    quota_lease_s: float = Field(default=0.1, ge=0, le=10)

    # A key or route change is seen by every replica within these many seconds.
    key_cache_ttl_s: float = 0.5
    route_cache_ttl_s: float = 1.0

    # Token reservation: prompt estimate + max_tokens, or this when the client gives no max_tokens.
    default_max_tokens_reserve: int = 512

    max_body_bytes: int = 4 * 1024 * 1024
    upstream_connect_timeout_s: float = 5.0
    upstream_read_timeout_s: float = 120.0  # longest silence allowed between upstream bytes
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

    @model_validator(mode="after")
    def _feedback_configured(self) -> "GatewaySettings":
        if (self.request_log_sink is RequestLogSinkKind.feedback or self.feedback_url) and not (
            self.feedback_url and self.feedback_token
        ):
            raise ValueError("the feedback service needs both GATEWAY_FEEDBACK_URL and GATEWAY_FEEDBACK_TOKEN")
        if self.retriever_url and not self.retriever_token:
            raise ValueError("the retriever needs both GATEWAY_RETRIEVER_URL and GATEWAY_RETRIEVER_TOKEN")
        return self

    def admin_token_value(self) -> str:
        return require_secret(
            self.admin_token, name="GATEWAY_ADMIN_TOKEN", dev_mode=self.dev_mode, dev_default=DEV_ADMIN_TOKEN
        )

    def key_secret_value(self) -> str:
        return require_secret(
            self.key_secret, name="GATEWAY_KEY_SECRET", dev_mode=self.dev_mode, dev_default=DEV_KEY_SECRET
        )
