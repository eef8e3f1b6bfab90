"""Settings base: every service subclasses it with its own env prefix (GATEWAY_, RETRIEVER_, ...)."""

from dataclasses import dataclass

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set ``model_config = service_config("GATEWAY_")``."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    log_json: bool = True
    # How ``python -m llmops_<service>`` runs it (llmops_common.serve). More workers use more cores; the
    # Kubernetes way is more pods of one worker each, which the HPA can count.
    workers: int = Field(default=1, ge=1, le=64)
    keep_alive_s: int = Field(default=75, ge=1, description="idle keep-alive connections close after this")
    # A request's line and headers must arrive within this (slowloris); 0: no limit (llmops_common.header_timeout).
    header_timeout_s: float = Field(default=10.0, ge=0, description="a request's head must arrive within this")
    graceful_shutdown_s: int = Field(default=30, ge=1, description="on SIGTERM, how long open requests may finish")
    # Dev mode accepts built-in development secrets; outside it a service refuses to start without real ones.
    dev_mode: bool = False


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long a service waits on PostgreSQL before it calls it unavailable (``llmops_common.sql.make_engine``)."""

    connect_s: float = 5.0  # a new connection, a pooled one's ping, a free pooled connection
    statement_s: float = 30.0  # one statement's answer (each fetch of a streamed result)
    migration_s: float = 600.0  # each statement of the start-up migrations, waiting for another replica's included


DEFAULT_DATABASE_TIMEOUTS = DatabaseTimeouts()


class StoreSettings(ServiceSettings):
    """``ServiceSettings`` of a service with a SQL store: how long it waits on PostgreSQL (SQLite ignores them). A
    server that answers nothing (a network partition drops packets: no error, only silence) is unavailable past
    these: the request gets 503 ``database_unavailable``, a background loop tries again on its next round."""

    database_connect_timeout_s: float = Field(default=DatabaseTimeouts.connect_s, gt=0)
    database_statement_timeout_s: float = Field(default=DatabaseTimeouts.statement_s, gt=0)
    database_migration_timeout_s: float = Field(default=DatabaseTimeouts.migration_s, gt=0)

    @property
    def database_timeouts(self) -> DatabaseTimeouts:
        return DatabaseTimeouts(
            connect_s=self.database_connect_timeout_s,
            statement_s=self.database_statement_timeout_s,
            migration_s=self.database_migration_timeout_s,
        )


def service_config(env_prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=env_prefix, extra="ignore", env_file=None)


class InsecureSettingsError(RuntimeError):
    """Raised at start-up when a secret is missing or a known development default outside dev mode."""


def require_secret(value: str | None, *, name: str, dev_mode: bool, dev_default: str, min_length: int = 16) -> str:
    """Return the secret to use; refuse weak or default secrets unless in dev mode."""
    if dev_mode:
        return value or dev_default
    if not value:
        raise InsecureSettingsError(f"{name} is not set (set it, or enable dev mode for local use)")
    if value == dev_default or len(value) < min_length:
        raise InsecureSettingsError(f"{name} is a development default or shorter than {min_length} characters")
    return value
