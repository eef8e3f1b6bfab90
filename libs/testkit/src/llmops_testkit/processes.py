"""Starting services as real processes for tests and benchmarks."""

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from llmops_cli.procs import log_tail, spawn, stop_processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, *, timeout_s: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} was ready")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout_s}s")


def until_ok(call, *, timeout_s: float = 15.0) -> list[httpx.Response]:
    """Calls ``call()`` until it answers 2xx (a dependency is back and reconnected), a few times a second; every
    answer seen, the last one 2xx unless ``timeout_s`` ran out first."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen.append(call())
        if seen[-1].is_success:
            break
        time.sleep(0.2)
    return seen


def start_together(*services) -> None:
    """Launches every service, then waits for each to be ready: their starts (imports, migrations, a model load)
    overlap instead of adding up. Each has ``launch()`` and ``wait()``; none may need another ready to start (a
    gateway needs its feedback service's URL, not the service). Called from the thread that owns the processes: a
    process dies with the thread that launched it."""
    for service in services:
        service.launch()
    for service in services:
        service.wait()


def stop_together(*services) -> None:
    """Stops every service at once (``stop()`` each, in threads) and returns once all have: a process that loaded
    torch spends seconds exiting, and one after the other those seconds add up."""
    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        for stopping in [pool.submit(service.stop) for service in services]:
            stopping.result()


class ServiceProcess:
    """A uvicorn app factory in its own process, with its output in a log file.

    ``module``: run ``python -m <module>`` instead, a service's production entry point (llmops_common.serve).
    """

    def __init__(
        self, app: str, *, env: dict[str, str], port: int | None = None, log_dir: Path, name: str, module: str = ""
    ) -> None:
        self.app, self.name, self.module = app, name, module
        self.port = port or free_port()
        self.env = {**os.environ, **env}
        self.log_path = Path(log_dir) / f"{name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 30.0) -> "ServiceProcess":
        self.launch()
        self.wait(timeout_s=timeout_s)
        return self

    def launch(self) -> None:
        """Start the process without waiting for it to be ready."""
        # Tied to the test process: a killed test run leaves no services behind.
        address = ["--host", "127.0.0.1", "--port", str(self.port)]
        if self.module:
            argv = [sys.executable, "-m", self.module, *address]
        else:
            argv = [sys.executable, "-m", "uvicorn", self.app, "--factory", *address, "--no-access-log"]
            argv += ["--log-level", "warning"]
        self.process = spawn(
            argv,
            log_path=self.log_path,
            env=self.env,
            die_with_parent=True,
        )

    def wait(self, *, timeout_s: float = 30.0) -> None:
        try:
            wait_ready(f"{self.url}/readyz", timeout_s=timeout_s, process=self.process)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {self.log_tail()}") from exc

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class CeleryWorkerProcess:
    """What every Celery worker under test shares (trainer, batch): its health port's readiness, its pool's pids,
    a kill as the OOM killer or a lost node would do it, and a stop. Subclasses set ``process``, ``port`` and
    ``log_path`` and say what they are in ``what``."""

    what = "worker"
    process: subprocess.Popen | None
    port: int
    log_path: Path

    def wait(self, *, timeout_s: float = 120.0):
        try:
            wait_ready(f"http://127.0.0.1:{self.port}/readyz", timeout_s=timeout_s, process=self.process)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"{self.what} did not start: {log_tail(self.log_path, 40)}") from exc
        return self

    def pool_pids(self) -> list[int]:
        """The worker's pool processes (where its tasks run)."""
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in children.split()]

    def kill(self) -> list[int]:
        """SIGKILL to the worker process alone (not its group). Returns the pool pids it had, so a test can check
        they died with it."""
        pool = self.pool_pids()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        return pool

    def stop(self) -> None:
        if self.process is not None:
            stop_processes([self.process], timeout_s=10)
