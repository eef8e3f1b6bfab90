"""When and how a Qdrant Edge collection's HNSW index is built, while the collection keeps serving.

A collection is due once ``after_writes`` points were written since its last build and writes have paused for
``quiet_s`` (an ingest still running would only be copied half). The build runs ``optimize()`` in a child
process on a copy of the shard (see ``edge_build``); searches meanwhile use the live shard, whose recent points
sit in a small unindexed segment that Qdrant searches exhaustively. Below Qdrant's indexing threshold (about
6,500 points of 384 floats) ``optimize()`` keeps the segment plain: exact search is fast enough there.
"""

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable

from llmops_retriever.store.edge_collection import EdgeCollection

logger = logging.getLogger(__name__)


class BuildFailed(RuntimeError):
    pass


class Indexer:
    def __init__(
        self,
        collections: Callable[[], list[EdgeCollection]],
        *,
        after_writes: int,
        quiet_s: float,
        check_s: float,
        on_build: Callable[[str, float, bool], None] | None = None,
    ) -> None:
        self._collections = collections
        self._after_writes, self._quiet_s, self._check_s = after_writes, quiet_s, check_s
        self._on_build = on_build or (lambda name, seconds, ok: None)
        self._builds: dict[str, asyncio.Task] = {}
        self._failures: dict[str, float] = {}  # collection -> monotonic time of the last failed build
        self._loop: asyncio.Task | None = None

    def start(self) -> None:
        self._loop = asyncio.create_task(self._watch(), name="edge-indexer")

    def building(self, name: str) -> bool:
        return name in self._builds

    async def build(self, collection: EdgeCollection) -> None:
        """Builds now (or joins the build under way) and waits for it; raises ``BuildFailed``."""
        task = self._builds.get(collection.name) or self._spawn(collection)
        if not await asyncio.shield(task):
            raise BuildFailed(f"index build of {collection.name!r} failed (see the log)")

    async def cancel(self, name: str) -> None:
        task = self._builds.get(name)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def aclose(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        for name in list(self._builds):
            await self.cancel(name)

    def _due(self, collection: EdgeCollection) -> bool:
        now = time.monotonic()
        return (
            not collection.closed
            and collection.name not in self._builds
            and collection.writes_since_build >= self._after_writes
            and now - collection.last_write >= self._quiet_s
            and now - self._failures.get(collection.name, float("-inf")) >= 60.0  # a failing build backs off
        )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._check_s)
            for collection in self._collections():
                if self._due(collection):
                    self._spawn(collection)

    def _spawn(self, collection: EdgeCollection) -> asyncio.Task:
        task = asyncio.create_task(self._run(collection), name=f"edge-index-{collection.name}")
        self._builds[collection.name] = task
        task.add_done_callback(lambda _: self._builds.pop(collection.name, None))
        return task

    async def _run(self, collection: EdgeCollection) -> bool:
        """True when the built index is live. Failures are logged here: background builds have no caller."""
        started = time.perf_counter()
        ok = False
        try:
            await self._build(collection)
            ok = True
            self._failures.pop(collection.name, None)
        except Exception:
            self._failures[collection.name] = time.monotonic()
            logger.exception("index build failed", extra={"collection": collection.name})
        finally:
            seconds = time.perf_counter() - started
            self._on_build(collection.name, seconds, ok)
            logger.info(
                "index build ended", extra={"collection": collection.name, "ok": ok, "seconds": round(seconds, 2)}
            )
        return ok

    async def _build(self, collection: EdgeCollection) -> None:
        target = await asyncio.to_thread(collection.begin_build)
        try:
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "llmops_retriever.store.edge_build",
                str(target),
                str(os.getpid()),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                _, stderr = await child.communicate()
            except asyncio.CancelledError:
                child.kill()
                await child.wait()
                raise
            if child.returncode != 0:
                raise BuildFailed(f"exit {child.returncode}: {stderr.decode(errors='replace')[-2000:]}")
            await asyncio.to_thread(collection.finish_build, target)
        except BaseException:
            await asyncio.to_thread(collection.abandon_build, target)
            raise
