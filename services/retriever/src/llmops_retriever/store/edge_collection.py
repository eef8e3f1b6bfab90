"""One collection on Qdrant Edge: a shard directory per generation, and the spec beside it.

Layout: ``<data_dir>/<name>/collection.json`` (the spec and the live generation) and ``<name>/gen-<n>/`` (the
shard). An index build copies the live shard to ``gen-<n+1>``, optimizes the copy in another process, replays
the writes made meanwhile on it, and swaps it in; the swap is the atomic rewrite of ``collection.json``.
Everything here is synchronous and thread-safe; the async store calls it from worker threads.
"""

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import orjson
import qdrant_edge as qe

from llmops_retriever.store.base import CollectionNotFound, CollectionSpec
from llmops_retriever.store.rwlock import RWLock

logger = logging.getLogger(__name__)

SPEC_FILE = "collection.json"
T = TypeVar("T")


def _write_spec(root: Path, spec: CollectionSpec, generation: int) -> None:
    tmp = root / f".{SPEC_FILE}.tmp"
    tmp.write_bytes(orjson.dumps({"spec": spec.model_dump(mode="json"), "generation": generation}))
    os.replace(tmp, root / SPEC_FILE)  # a crash leaves the old generation or the new one, never half of each


class EdgeCollection:
    def __init__(self, root: Path, spec: CollectionSpec, generation: int, shard: qe.EdgeShard) -> None:
        self.root, self.spec, self.generation, self.shard = root, spec, generation, shard
        self._guard = RWLock()  # shared: anything using the shard; exclusive: swapping or closing it
        self._writes = threading.Lock()  # one write at a time; a build's copy and its swap hold it too
        self._pending: list[qe.UpdateOperation] | None = None  # writes during a build, replayed on the copy
        self.writes_since_build = 0
        self._carried = 0  # writes_since_build when the running build copied the shard
        self.last_write = 0.0  # time.monotonic()
        self.closed = False

    @property
    def name(self) -> str:
        return self.spec.name

    def _dir(self, generation: int) -> Path:
        return self.root / f"gen-{generation}"

    @classmethod
    def create(cls, root: Path, spec: CollectionSpec, config: qe.EdgeConfig, setup: list) -> "EdgeCollection":
        root.mkdir(parents=True)
        shard = qe.EdgeShard.create(str(root / "gen-0"), config)
        for operation in setup:
            shard.update(operation)
        _write_spec(root, spec, 0)
        return cls(root, spec, 0, shard)

    @classmethod
    def open(cls, root: Path) -> "EdgeCollection":
        document = orjson.loads((root / SPEC_FILE).read_bytes())
        generation = document["generation"]
        for stale in root.glob("gen-*"):  # an unfinished build of an earlier run
            if stale.name != f"gen-{generation}":
                shutil.rmtree(stale, ignore_errors=True)
        shard = qe.EdgeShard.load(str(root / f"gen-{generation}"))
        collection = cls(root, CollectionSpec.model_validate(document["spec"]), generation, shard)
        # Points never indexed (the build threshold decides); an estimate is enough to schedule a build.
        info = shard.info()
        sparse_indexed = info.points_count if collection.spec.hybrid else 0
        collection.writes_since_build = max(0, info.points_count - (info.indexed_vectors_count - sparse_indexed))
        return collection

    def read(self, use: Callable[[qe.EdgeShard], T]) -> T:
        with self._guard.shared():
            if self.closed:
                raise CollectionNotFound(self.name)
            return use(self.shard)

    def write(self, operation: qe.UpdateOperation, *, points: int = 0) -> None:
        with self._writes, self._guard.shared():
            if self.closed:
                raise CollectionNotFound(self.name)
            self.shard.update(operation)
            if self._pending is not None:
                self._pending.append(operation)
            self.writes_since_build += points
            self.last_write = time.monotonic()

    # --- index builds (see edge_index) ---

    def begin_build(self) -> Path:
        """A consistent copy of the live shard to build on; writes from now on are also recorded for replay."""
        with self._writes:
            if self.closed:
                raise CollectionNotFound(self.name)
            target = self._dir(self.generation + 1)
            shutil.rmtree(target, ignore_errors=True)
            with self._guard.shared():
                self.shard.flush()
                shutil.copytree(self._dir(self.generation), target)
            self._pending = []
            self._carried, self.writes_since_build = self.writes_since_build, 0
            return target

    def finish_build(self, target: Path) -> None:
        """Opens the built copy, replays the writes made meanwhile, and makes it the live shard."""
        with self._writes:
            pending, self._pending = self._pending or [], None
            if self.closed:
                shutil.rmtree(target, ignore_errors=True)
                return
            started = time.perf_counter()
            built = qe.EdgeShard.load(str(target))
            for operation in pending:
                built.update(operation)
            with self._guard.exclusive():
                old, old_dir = self.shard, self._dir(self.generation)
                _write_spec(self.root, self.spec, self.generation + 1)
                self.shard, self.generation = built, self.generation + 1
            old.close()
            shutil.rmtree(old_dir, ignore_errors=True)
            logger.info(
                "index swapped in",
                extra={
                    "collection": self.name,
                    "replayed": len(pending),
                    "swap_s": round(time.perf_counter() - started, 3),
                },
            )

    def abandon_build(self, target: Path) -> None:
        with self._writes:
            self.writes_since_build += self._carried  # still unindexed: a later build picks them up
            self._pending, self._carried = None, 0
            if target != self._dir(self.generation):  # a swap that finished despite a cancellation keeps it
                shutil.rmtree(target, ignore_errors=True)

    def close(self, *, remove: bool = False) -> None:
        with self._writes, self._guard.exclusive():
            if not self.closed:
                self.closed = True
                self.shard.close()
            if remove:
                shutil.rmtree(self.root, ignore_errors=True)
