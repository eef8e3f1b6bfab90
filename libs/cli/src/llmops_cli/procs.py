"""Child processes: each in its own process group, output to a log file, stopped as a group."""

import ctypes
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
# Loaded here, not in the forked child: dlopen between fork and exec can deadlock.
_libc = ctypes.CDLL(None, use_errno=True) if os.uname().sysname == "Linux" else None


def _die_with_parent() -> None:
    # Runs in the child between fork and exec (after any uid change, which would clear it). If the
    # supervisor is killed with SIGKILL it cannot stop its children; the kernel then does it for us.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    die_with_parent: bool = False,
) -> subprocess.Popen:
    """Start ``argv`` in a new session (its own process group), stdout and stderr appended to ``log_path``.

    A separate process group keeps a terminal's Ctrl-C away from the children, so the supervisor decides the
    order of shutdown, and lets us signal a child together with anything it forked.
    ``die_with_parent`` ties the child to the *calling thread*: only use it from a long-lived (main) thread.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            user=user,
            group=_primary_group(user) if user else None,
            extra_groups=[] if user else None,
            # Safe despite threads: it only makes one syscall through an already loaded libc.
            preexec_fn=_die_with_parent if die_with_parent and _libc is not None else None,  # noqa: PLW1509
        )


def _primary_group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_processes(procs: Sequence[subprocess.Popen], *, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
    """Send ``sig`` to each process group, wait up to ``timeout_s`` in total, then SIGKILL what is left."""
    for proc in procs:
        if proc.poll() is None:
            _signal_group(proc, sig)
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        # Also reaches grandchildren still in the group after the leader exited.
        _signal_group(proc, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait()


_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on, chosen below the kernel's ephemeral range (32768-60999 by default). A port the
    kernel hands out for port 0 lies in that range, where an outgoing connection's local end may take it before the
    service binds it: suspected when a vLLM kept exiting on start in the full suite."""
    for _ in range(500):
        port = random.randrange(20000, 32768)
        if port not in _HANDED_OUT and not port_in_use(port, host):
            _HANDED_OUT.add(port)
            return port
    with socket.socket() as s:  # that range is crowded: let the kernel choose
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 16384))
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
    except OSError:
        return ""
