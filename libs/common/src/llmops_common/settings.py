"""Settings base: every service subclasses it with its own env prefix (GATEWAY_, RETRIEVER_, ...)."""

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
