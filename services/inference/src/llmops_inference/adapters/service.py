"""The adapters vLLM should serve, and the sync loop that makes it so.

Wanted adapters come from the registry (``model@alias``, see ``registry.py``) and from the admin API (a local
path). A sync pass reads the registry, downloads new versions and reconciles vLLM: loads what is new or moved
(in place, under the same name), unloads what is retired. vLLM forgets run-time adapters when it restarts, so a
new engine generation is reconciled from scratch. A registry that cannot be read leaves the wanted set as it was:
what is loaded stays served, and readiness reports the registry as unreachable.
"""

import asyncio
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from llmops_inference.adapters.registry import RegistryAdapter, RegistryReader
from llmops_inference.engine.client import AdapterLoadError, VllmClient, VllmUnavailable
from llmops_inference.engine.supervisor import VllmSupervisor
from llmops_inference.metrics import InferenceMetrics

logger = logging.getLogger(__name__)


@dataclass
class Adapter:
    name: str  # the served name
    source: str  # "registry" or "admin"
    path: Path | None = None  # local directory; a registry adapter has none until downloaded
    entry: RegistryAdapter | None = None
    error: str | None = None  # the last download or load failure

    @property
    def version(self) -> str | None:
        return self.entry.version if self.entry else None


class AdapterManager:
    def __init__(
        self,
        *,
        engine: VllmSupervisor,
        client: VllmClient,
        reader: RegistryReader | None,
        download_root: Path,
        metrics: InferenceMetrics,
        interval_s: float,
        ready_without_registry: bool = False,
    ) -> None:
        self.engine, self.client, self.reader = engine, client, reader
        self.download_root = Path(download_root)
        self.metrics = metrics
        self.interval_s = interval_s
        self.ready_without_registry = ready_without_registry
        self.wanted: dict[str, Adapter] = {}
        self._loaded: dict[str, Adapter] = {}  # what the current engine generation has loaded
        self._loaded_generation = 0
        self._synced_generation = 0
        self.registry_error: str | None = None
        self.registry_read_at: float | None = None  # unix time of the last successful read
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    # --- lifecycle ---

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="adapter-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def wake(self) -> None:
        """Sync now (vLLM just came up)."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception:
                logger.exception("adapter sync failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            except TimeoutError:
                pass
            self._wake.clear()

    # --- what the relay and readiness ask ---

    @property
    def loaded(self) -> dict[str, Adapter]:
        if self._loaded_generation != self.engine.generation:
            for name in list(self._loaded):
                self._forget(name)
            self._loaded_generation = self.engine.generation
        return self._loaded

    def is_loaded(self, name: str) -> bool:
        return self.engine.up and name in self.loaded

    def served_version(self, name: str) -> str | None:
        """The registry version loaded under ``name`` now (None: the base model, or an adapter from a path)."""
        adapter = self.loaded.get(name)
        return adapter.version if adapter is not None else None

    @property
    def synced(self) -> bool:
        """Every wanted adapter was tried on the running engine, after reading the registry at least once."""
        return self.engine.up and self._synced_generation == self.engine.generation

    def check_synced(self) -> None:
        if not self.synced:
            why = f"; registry: {self.registry_error}" if self.registry_error else ""
            raise RuntimeError(f"adapters not synced with the running vLLM yet{why}")

    def check_registry(self) -> None:
        if self.registry_error:
            raise RuntimeError(f"registry unreachable, serving the adapters already loaded: {self.registry_error}")

    def check_loads(self) -> None:
        failed = [f"{a.name}: {a.error}" for a in self.wanted.values() if a.error]
        if failed:
            raise RuntimeError("; ".join(failed))

    # --- one sync pass ---

    async def sync(self) -> None:
        async with self._lock:
            if self.reader is not None:
                await self._read_registry()
                await self._download()
            await self._reconcile()
            self._report()

    async def _read_registry(self) -> None:
        try:
            found = await asyncio.to_thread(self.reader.read)
        except Exception as exc:  # noqa: BLE001 - whatever the client raises, the registry is unusable now
            if self.registry_error is None:
                logger.warning(
                    "cannot read the MLflow registry; keeping the adapters loaded", extra={"error": repr(exc)}
                )
            self.registry_error = f"{type(exc).__name__}: {exc}"[:300]
            self.metrics.registry_up.set(0)
            return
        self.registry_error, self.registry_read_at = None, time.time()
        self.metrics.registry_up.set(1)
        for name in [n for n, a in self.wanted.items() if a.source == "registry" and n not in found]:
            del self.wanted[name]
        for name, entry in found.items():
            current = self.wanted.get(name)
            if current is None or current.entry != entry:
                self.wanted[name] = Adapter(name, "registry", entry=entry)

    async def _download(self) -> None:
        for adapter in list(self.wanted.values()):
            if adapter.entry is None or adapter.path is not None:
                continue
            try:
                adapter.path = await asyncio.to_thread(self.reader.download, adapter.entry, self.download_root)
            except Exception as exc:  # noqa: BLE001 - recorded on the adapter, retried next pass
                adapter.error = f"download failed: {exc}"[:300]
                self.metrics.adapter_loads.labels("download", "error").inc()
                logger.warning("adapter download failed", extra={"adapter": adapter.name, "error": repr(exc)})

    async def _reconcile(self) -> None:
        if not self.engine.up:
            return
        generation = self.engine.generation
        loaded = self.loaded
        try:
            for name in [n for n in loaded if n not in self.wanted]:
                await self.client.unload_adapter(name)
                self._forget(name)
                self.metrics.adapter_loads.labels("unload", "ok").inc()
                logger.info("adapter unloaded", extra={"adapter": name})
            for adapter in list(self.wanted.values()):
                current = loaded.get(adapter.name)
                if adapter.path is not None and (current is None or current.path != adapter.path):
                    await self._load(adapter)
        except VllmUnavailable as exc:
            logger.warning("vLLM went away during the adapter sync", extra={"error": str(exc)})
            return  # the pass after it is up again (it wakes us) starts over
        if self.engine.generation == generation and (
            self.reader is None or self.registry_read_at is not None or self.ready_without_registry
        ):
            self._synced_generation = generation
        self._prune()

    async def _load(self, adapter: Adapter) -> None:
        replace = adapter.name in self.loaded
        try:
            await self.client.load_adapter(adapter.name, str(adapter.path), replace=replace)
        except AdapterLoadError as exc:
            error = f"load failed: {exc}"[:300]
            if error != adapter.error:  # retried every pass; logged once
                logger.warning("adapter load failed", extra={"adapter": adapter.name, "error": str(exc)})
            adapter.error = error
            self.metrics.adapter_loads.labels("load", "error").inc()
            return
        if replace:
            self._forget(adapter.name)
        adapter.error = None
        self._loaded[adapter.name] = adapter
        self.metrics.adapter_loaded.labels(adapter.name, adapter.source, adapter.version or "-").set(1)
        self.metrics.adapter_loads.labels("load", "ok").inc()
        logger.info(
            "adapter loaded", extra={"adapter": adapter.name, "version": adapter.version, "path": str(adapter.path)}
        )

    def _forget(self, name: str) -> None:
        adapter = self._loaded.pop(name, None)
        if adapter is not None:
            self.metrics.adapter_loaded.remove(adapter.name, adapter.source, adapter.version or "-")

    def _prune(self) -> None:
        """Deletes downloaded versions no adapter uses any more (vLLM may reread a loaded one's files: kept)."""
        in_use = {a.path for a in (*self.wanted.values(), *self._loaded.values()) if a.path is not None}
        for version_dir in self.download_root.glob("*/v*"):
            if version_dir not in in_use:
                shutil.rmtree(version_dir, ignore_errors=True)

    def _report(self) -> None:
        everything_loaded = all(a.name in self._loaded for a in self.wanted.values())
        complete = self.registry_error is None and self.synced and everything_loaded
        self.metrics.adapters_synced.set(1 if complete else 0)
        self.metrics.syncs.labels("ok" if complete else "incomplete").inc()
        if complete:
            self.metrics.last_sync.set(time.time())

    # --- the admin API's adapters: a local directory under a name of the operator's choosing ---

    async def load_local(self, name: str, path: Path) -> Adapter:
        async with self._lock:
            if not self.engine.up:
                raise VllmUnavailable("vLLM is not up")
            adapter = Adapter(name, "admin", path=path)
            await self.client.load_adapter(name, str(path), replace=name in self.loaded)  # AdapterLoadError: refused
            self._forget(name)
            self._loaded[name] = adapter
            self.wanted[name] = adapter
            self.metrics.adapter_loaded.labels(name, "admin", "-").set(1)
            self.metrics.adapter_loads.labels("load", "ok").inc()
            logger.info("adapter loaded from a path", extra={"adapter": name, "path": str(path)})
            return adapter

    async def unload_local(self, name: str) -> None:
        async with self._lock:
            self.wanted.pop(name, None)
            if name in self.loaded:
                await self.client.unload_adapter(name)
                self._forget(name)
                self.metrics.adapter_loads.labels("unload", "ok").inc()
