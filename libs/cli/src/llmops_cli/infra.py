"""Find a running Redis / PostgreSQL, or start a private one from Debian's binaries.

Used by ``llmops up`` (Redis) and by the test suites' fixtures (both), so it is quiet: no prints, the
servers' own output goes to log files in the state directory.
"""

import glob
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llmops_cli.procs import free_port, log_tail, spawn, stop_processes


@dataclass
class _Handle:
    url: str
    process: subprocess.Popen | None = None  # None: a server we found, not ours to stop
    stop_signal: int = signal.SIGTERM
    cleanup_dir: Path | None = field(default=None, repr=False)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is not None:
            stop_processes([self.process], sig=self.stop_signal, timeout_s=timeout_s)
            self.process = None
        if self.cleanup_dir is not None:
            shutil.rmtree(self.cleanup_dir, ignore_errors=True)
            self.cleanup_dir = None


class RedisHandle(_Handle):
    pass


@dataclass
class PostgresHandle(_Handle):
    # A private cluster's server command, to start it again on the same port and data (None: found, not ours).
    relaunch: Callable[[], subprocess.Popen] | None = field(default=None, repr=False)
    log_path: Path | None = None

    @property
    def async_url(self) -> str:
        """The URL for SQLAlchemy's asyncpg driver."""
        return self.url.replace("postgresql://", "postgresql+asyncpg://", 1)

    def restart(self, *, down_s: float = 0.0, timeout_s: float = 60.0, while_down=None) -> None:
        """Stops a private server (fast shutdown: clients are cut off, as in a crash or failover) and starts it again
        on the same port and data; ``while_down()`` runs in between. Only a server this handle started."""
        if self.relaunch is None or self.process is None:
            raise RuntimeError("not a private PostgreSQL this handle started")
        stop_processes([self.process], sig=self.stop_signal, timeout_s=10)
        if while_down is not None:
            while_down()
        time.sleep(down_s)
        self.process = self.relaunch()
        port = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])
        _wait_until(
            lambda: postgres_accepts("127.0.0.1", port),
            self.process,
            what="postgres",
            log=self.log_path or Path(os.devnull),
            timeout_s=timeout_s,
        )


def redis_ping(host: str, port: int, *, timeout_s: float = 1.0) -> bool:
    """True when a Redis that needs no password answers PING (raw RESP, no client library needed)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def postgres_accepts(
    host: str, port: int, *, user: str = "postgres", database: str = "postgres", timeout_s: float = 1.0
) -> bool:
    """True when the server lets ``user`` into ``database`` without a password (protocol v3 start-up)."""
    params = f"user\0{user}\0database\0{database}\0\0".encode()
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
            for _ in range(64):  # AuthenticationOk, ParameterStatus..., BackendKeyData, ReadyForQuery
                kind, length = struct.unpack("!ci", _recv_exact(s, 5))
                body = _recv_exact(s, length - 4)
                if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
                    return False  # the server wants a password
                if kind == b"E":
                    return False  # e.g. "the database system is starting up"
                if kind == b"Z":
                    s.sendall(b"X" + struct.pack("!i", 4))  # Terminate
                    return True
    except (OSError, struct.error):
        return False
    return False


def _wait_until(check, proc: subprocess.Popen, *, what: str, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}; log {log}:\n{log_tail(log)}")
        if check():
            return
        time.sleep(0.1)
    stop_processes([proc], timeout_s=2)
    raise RuntimeError(f"{what} did not come up within {timeout_s:.0f}s; log {log}:\n{log_tail(log)}")


def find_or_start_redis(
    state_dir: Path, *, shared_port: int | None = 6379, die_with_parent: bool = False, timeout_s: float = 15.0
) -> RedisHandle:
    """``$LLMOPS_REDIS_URL``; else a Redis answering on 127.0.0.1:``shared_port``; else a private one."""
    if url := os.environ.get("LLMOPS_REDIS_URL"):
        return RedisHandle(url)
    if shared_port is not None and redis_ping("127.0.0.1", shared_port):
        return RedisHandle(f"redis://127.0.0.1:{shared_port}/0")
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if binary is None:
        raise RuntimeError(
            "no Redis on 127.0.0.1:6379 and no redis-server binary: install Debian's redis-server "
            "(make install does when run as root) or set LLMOPS_REDIS_URL"
        )
    data = Path(state_dir) / "redis"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # A cache for counters only: no persistence, loopback only.
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data),
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    ]
    log = data / "redis.log"
    proc = spawn(argv, log_path=log, cwd=data, die_with_parent=die_with_parent)
    _wait_until(lambda: redis_ping("127.0.0.1", port), proc, what="redis-server", log=log, timeout_s=timeout_s)
    return RedisHandle(f"redis://127.0.0.1:{port}/0", proc)


def _postgres_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise RuntimeError(
            f"no PostgreSQL on 127.0.0.1:5432 and no {name} binary: install Debian's postgresql "
            "(make install does when run as root) or set LLMOPS_POSTGRES_URL"
        )
    return candidates[-1]


def _runs_as(user: str | None, path: Path) -> bool:
    """Can ``user`` write into ``path`` (every parent directory must let it through)?"""
    return (
        subprocess.run(
            ["test", "-w", str(path), "-a", "-x", str(path)],
            check=False,
            user=user,
            cwd="/",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).returncode
        == 0
    )


def _cluster_dir(state_dir: Path, user: str | None) -> tuple[Path, bool]:
    """Where the private cluster lives, and whether it is temporary (removed on stop)."""
    base = Path(state_dir) / "postgres"
    base.mkdir(parents=True, exist_ok=True)
    # Unix socket paths are limited to about 107 bytes.
    if user is None and len(str(base)) < 80:
        return base, False
    if user is not None:
        shutil.chown(base, user)
        if len(str(base)) < 80 and _runs_as(user, base):
            return base, False
    # The state dir is out of the postgres user's reach (e.g. under /root): a throw-away cluster instead.
    tmp = Path(tempfile.mkdtemp(prefix="llmops-pg-"))
    if user is not None:
        shutil.chown(tmp, user)
    return tmp, True


def find_or_start_postgres(
    state_dir: Path, *, shared_port: int | None = 5432, die_with_parent: bool = False, timeout_s: float = 60.0
) -> PostgresHandle:
    """``$LLMOPS_POSTGRES_URL``; else a trust-auth server on 127.0.0.1:``shared_port``; else a private cluster."""
    if url := os.environ.get("LLMOPS_POSTGRES_URL"):
        return PostgresHandle(url)
    if shared_port is not None and postgres_accepts("127.0.0.1", shared_port):
        return PostgresHandle(f"postgresql://postgres@127.0.0.1:{shared_port}/postgres")
    return start_private_postgres(state_dir, die_with_parent=die_with_parent, timeout_s=timeout_s)


def start_private_postgres(
    state_dir: Path, *, die_with_parent: bool = False, timeout_s: float = 60.0
) -> PostgresHandle:
    """A private cluster under ``state_dir`` (initdb on first use) on a free port, never a shared server: for tests
    that stop and start it (``PostgresHandle.restart``)."""
    initdb, postgres = _postgres_bin("initdb"), _postgres_bin("postgres")
    # initdb and postgres refuse to run as root: run them as the postgres user Debian's package creates.
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        try:
            import pwd

            pwd.getpwnam(user)
        except KeyError:
            raise RuntimeError(
                "running as root and there is no 'postgres' user to run a private PostgreSQL; "
                "install Debian's postgresql or set LLMOPS_POSTGRES_URL"
            ) from None
    base, temporary = _cluster_dir(Path(state_dir), user)
    data, log = base / "data", base / "postgres.log"
    if not (data / "PG_VERSION").exists():
        result = subprocess.run(
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
            check=False,
            user=user,
            cwd=base,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout[-2000:]}")
    port = free_port()
    # A throw-away development/test server: durability off for speed; TCP on loopback, socket in our dir.
    argv = [
        postgres,
        "-D",
        str(data),
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
        "-k",
        str(base),
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
    ]

    def launch() -> subprocess.Popen:
        return spawn(argv, log_path=log, cwd=base, user=user, die_with_parent=die_with_parent)

    proc = launch()
    _wait_until(lambda: postgres_accepts("127.0.0.1", port), proc, what="postgres", log=log, timeout_s=timeout_s)
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client to disconnect.
    return PostgresHandle(
        f"postgresql://postgres@127.0.0.1:{port}/postgres",
        proc,
        signal.SIGINT,
        base if temporary else None,
        launch,
        log,
    )
