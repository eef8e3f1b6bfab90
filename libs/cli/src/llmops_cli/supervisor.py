"""A small process supervisor: start services, wait for readiness, restart crashes with back-off, stop cleanly."""

import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from llmops_cli.procs import log_tail, spawn, stop_processes

MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 60.0  # a child that ran this long crashed "for the first time" again: back-off starts over


@dataclass(frozen=True)
class ServiceSpec:
    """One process ``llmops up`` runs. ``env`` is added to the supervisor's own environment."""

    name: str
    argv: Sequence[str]
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    ready_path: str = "/readyz"
    ready_timeout_s: float = 120.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class StartupError(RuntimeError):
    pass


@dataclass
class _Child:
    spec: ServiceSpec
    log_path: Path
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = 1.0
    restart_at: float | None = None


def is_ready(url: str, *, timeout_s: float = 2.0) -> bool:
    try:
        # trust_env=False: our children are on loopback; an HTTP(S)_PROXY in the environment must not intercept.
        return httpx.get(url, timeout=timeout_s, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


class Supervisor:
    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        *,
        log_dir: Path,
        stop: threading.Event,
        on_event: Callable[[str], None] = print,
    ) -> None:
        self.children = [_Child(spec, log_dir / f"{spec.name}.log") for spec in specs]
        self.stop_event = stop
        self.on_event = on_event

    def _start(self, child: _Child) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **child.spec.env}
        child.proc = spawn(child.spec.argv, log_path=child.log_path, env=env, die_with_parent=True)
        child.started_at = time.monotonic()
        child.restart_at = None

    def start_all(self) -> None:
        for child in self.children:
            self._start(child)

    def wait_ready(self, on_waiting: Callable[[list[str]], None] = lambda names: None) -> bool:
        """Block until every service's readiness path answers 200. False when asked to stop meanwhile.

        During start-up a service that exits is a configuration problem, not a crash to retry: fail with its log.
        """
        pending = {child.spec.name: child for child in self.children}
        started = time.monotonic()
        while pending:
            on_waiting(sorted(pending))
            for name, child in list(pending.items()):
                if child.proc.poll() is not None:
                    raise StartupError(
                        f"{name} exited with code {child.proc.returncode} while starting; "
                        f"log {child.log_path}:\n{log_tail(child.log_path)}"
                    )
                if is_ready(child.spec.url + child.spec.ready_path):
                    del pending[name]
                elif time.monotonic() - started > child.spec.ready_timeout_s:
                    raise StartupError(
                        f"{name} was not ready within {child.spec.ready_timeout_s:.0f}s "
                        f"({child.spec.url}{child.spec.ready_path}); log {child.log_path}:\n"
                        f"{log_tail(child.log_path)}"
                    )
            if pending and self.stop_event.wait(0.25):
                return False
        return True

    def _check(self, child: _Child, now: float) -> None:
        if child.restart_at is not None:
            if now >= child.restart_at:
                child.restarts += 1
                self.on_event(f"restarting {child.spec.name} (restart #{child.restarts})")
                self._start(child)
            return
        code = child.proc.poll()
        if code is None:
            return
        if now - child.started_at > STABLE_AFTER_S:
            child.backoff_s = 1.0
        child.restart_at = now + child.backoff_s
        self.on_event(
            f"{child.spec.name} exited with code {code}; restarting in {child.backoff_s:.0f}s (log {child.log_path})"
        )
        child.backoff_s = min(child.backoff_s * 2, MAX_BACKOFF_S)

    def restart(self, name: str, *, env: Mapping[str, str]) -> None:
        """Stops the service and starts it again with ``env`` added to its spec's: a setting that exists only once
        other services are up (the judge's gateway key). Call it before ``watch``, not beside it."""
        child = next(c for c in self.children if c.spec.name == name)
        if child.proc is not None:
            stop_processes([child.proc])
        child.spec = replace(child.spec, env={**child.spec.env, **env})
        self._start(child)

    def watch(self, *, poll_s: float = 0.5) -> None:
        """Keep the services running until the stop event is set."""
        while not self.stop_event.wait(poll_s):
            now = time.monotonic()
            for child in self.children:
                self._check(child, now)

    def stop_all(self, *, timeout_s: float = 10.0) -> None:
        """SIGTERM every child's process group, wait up to ``timeout_s`` in total, then SIGKILL."""
        stop_processes([c.proc for c in self.children if c.proc is not None], timeout_s=timeout_s)
