"""Runs the vLLM server as a child process: prepares the bundled model first, watches health, restarts a crashed
or hung server with back-off. ``generation`` counts starts: adapters loaded at run time die with their process."""

import asyncio
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from llmops_inference.engine.client import VllmClient
from llmops_inference.engine.command import vllm_argv, vllm_env
from llmops_inference.metrics import InferenceMetrics
from llmops_inference.settings import InferenceSettings

logger = logging.getLogger(__name__)

STABLE_AFTER_S = 60.0  # a server that ran this long crashed "for the first time" again: back-off starts over
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    # In the child between fork and exec: if this service dies (even by SIGKILL), the kernel stops vLLM too.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # vLLM forks an engine core and workers: signal the whole group
    except (ProcessLookupError, PermissionError):
        pass


class EngineState(StrEnum):
    preparing = "preparing"  # converting the bundled model
    starting = "starting"
    up = "up"
    down = "down"  # exited, hung or failed to start; a restart is scheduled
    stopped = "stopped"


class VllmSupervisor:
    def __init__(
        self,
        settings: InferenceSettings,
        *,
        client: VllmClient,
        api_key: str,
        metrics: InferenceMetrics,
        on_up: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.api_key = api_key
        self.metrics = metrics
        self.on_up = on_up
        self.log_path = Path(settings.state_dir) / "vllm.log"
        self.state = EngineState.stopped
        self.generation = 0
        self.restarts = 0
        self.last_exit: str | None = None
        self.process: subprocess.Popen | None = None
        self._task: asyncio.Task | None = None

    @property
    def up(self) -> bool:
        return self.state is EngineState.up

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="vllm-supervisor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.process is not None:
            await self._terminate(self.process)
        self._set_state(EngineState.stopped)

    def _set_state(self, state: EngineState) -> None:
        self.state = state
        self.metrics.vllm_up.set(1 if state is EngineState.up else 0)

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, signalled as one
                preexec_fn=_die_with_parent if _libc is not None else None,  # noqa: PLW1509 - one syscall, no locks
            )

    async def _terminate(self, process: subprocess.Popen, *, timeout_s: float = 15.0) -> None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("vLLM ignored SIGTERM; killing it", extra={"pid": process.pid})
        _signal_group(process.pid, signal.SIGKILL)  # also whatever it forked and left behind
        await asyncio.to_thread(process.wait)

    async def _run(self) -> None:
        backoff = self.settings.restart_backoff_s
        while True:
            started = time.monotonic()
            try:
                if self.settings.uses_bundled_model:
                    await self._prepare()
                self.last_exit = await self._run_once()
            except Exception as exc:
                logger.exception("vLLM could not be started")
                self.last_exit = f"start failed: {exc!r}"
            self._set_state(EngineState.down)
            self.restarts += 1
            self.metrics.vllm_restarts.inc()
            if time.monotonic() - started > STABLE_AFTER_S:
                backoff = self.settings.restart_backoff_s
            logger.error(
                "vLLM is down; restarting in %.0fs",
                backoff,
                extra={"reason": self.last_exit, "restarts": self.restarts, "log": str(self.log_path)},
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.settings.restart_backoff_max_s)

    async def _prepare(self) -> None:
        """The bundled model, converted once (a no-op after checksums). In a child: torch stays out of this process."""
        self._set_state(EngineState.preparing)
        argv = [sys.executable, "-m", "llmops_models.prepare", "--output", self.settings.model_source()]
        process = self._spawn(argv)
        code = await asyncio.to_thread(process.wait)
        if code != 0:
            raise RuntimeError(f"model preparation exited with {code}; see {self.log_path}")

    async def _run_once(self) -> str:
        """Starts vLLM and returns why it stopped: it exited, or it was killed for being unhealthy."""
        self._set_state(EngineState.starting)
        self.generation += 1
        started = time.monotonic()
        argv = vllm_argv(self.settings)
        logger.info("starting vLLM", extra={"generation": self.generation, "argv": " ".join(argv[2:])})
        process = self.process = self._spawn(argv, vllm_env(self.settings, self.api_key))
        exited = asyncio.create_task(asyncio.to_thread(process.wait))
        unhealthy = asyncio.create_task(self._watch_health(started))
        try:
            await asyncio.wait({exited, unhealthy}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            unhealthy.cancel()
        if exited.done():
            _signal_group(process.pid, signal.SIGKILL)  # the engine core and workers may outlive the API server
            return f"exited with code {exited.result()}"
        self._set_state(EngineState.down)
        await self._terminate(process)
        return unhealthy.result()

    async def _watch_health(self, started: float) -> str:
        """Returns only when vLLM should be restarted: never healthy in time, or too many failed checks in a row."""
        failures = 0
        while True:
            await asyncio.sleep(self.settings.health_interval_s)
            if await self.client.healthy(timeout_s=10.0):
                failures = 0
                if self.state is not EngineState.up:
                    self._set_state(EngineState.up)
                    took = time.monotonic() - started
                    self.metrics.vllm_start_seconds.set(took)
                    logger.info("vLLM is up", extra={"generation": self.generation, "start_s": round(took, 1)})
                    self.on_up()
            elif self.state is EngineState.up:
                failures += 1
                if failures >= self.settings.health_failures_down:
                    return f"{failures} failed health checks in a row"
            elif time.monotonic() - started > self.settings.start_timeout_s:
                return f"not healthy within {self.settings.start_timeout_s:.0f}s"
