"""The platform's services as ``llmops up`` runs them and ``llmops status`` finds them.

To add a service: give it a default port in ``DEFAULT_PORTS`` (the contract's port) and a spec builder in
``platform_services``. Everything else (supervision, readiness, status, port overrides) follows.
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from llmops_cli.state import Secrets
from llmops_cli.supervisor import ServiceSpec

# The contract's ports: retriever 8001, inference 8002, trainer 8003, feedback 8004, MLflow 5000 join as they land.
DEFAULT_PORTS: dict[str, int] = {"gateway": 8000}


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


def gateway_spec(ctx: PlatformContext) -> ServiceSpec:
    port = ctx.ports["gateway"]
    return ServiceSpec(
        name="gateway",
        argv=uvicorn_argv("llmops_gateway.app:create_app", port),
        port=port,
        env={
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_ADMIN_TOKEN": ctx.secrets.admin_token,
            "GATEWAY_KEY_SECRET": ctx.secrets.key_secret,
            "GATEWAY_REDIS_URL": ctx.redis_url,
            "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{ctx.state / 'gateway.db'}",
            "GATEWAY_REQUEST_LOG_PATH": str(ctx.state / "request-log.jsonl"),
        },
    )


def platform_services(ctx: PlatformContext) -> list[ServiceSpec]:
    """Every service ``llmops up`` runs, in start order."""
    return [gateway_spec(ctx)]
