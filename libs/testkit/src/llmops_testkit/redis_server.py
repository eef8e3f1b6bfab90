"""A private Redis that a fault test may kill and start again on the same port (the shared one must not be)."""

import shutil
import signal
import subprocess
import time
from pathlib import Path

from llmops_cli.infra import redis_ping
from llmops_cli.procs import spawn
from llmops_testkit.processes import free_port


class PrivateRedis:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "PrivateRedis":
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # No persistence: a restart comes back empty, as a cache node that lost its memory does.
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(self.state_dir), "--daemonize", "no"]
        self.process = spawn(argv, log_path=self.state_dir / "redis.log", die_with_parent=True)
        deadline = time.monotonic() + 10
        while not redis_ping("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {(self.state_dir / 'redis.log').read_text()[-2000:]}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """As a crash: SIGKILL, nothing flushed, every connection cut."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)

    def stop(self) -> None:
        self.kill()
