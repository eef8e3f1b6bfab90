"""Request log sinks. ``emit`` never blocks the request: records queue up and a background task writes them."""

import asyncio
import logging
from abc import ABC, abstractmethod
from pathlib import Path

import orjson

logger = logging.getLogger(__name__)


class RequestLogSink(ABC):
    @abstractmethod
    def emit(self, record: dict) -> bool:
        """Queue a record; False if it could not be queued."""

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class NullSink(RequestLogSink):
    def emit(self, record: dict) -> bool:
        return True


class JsonlFileSink(RequestLogSink):
    """Appends one JSON object per line; batches writes and flushes them in a worker thread."""

    def __init__(self, path: str | Path, *, queue_size: int = 10_000) -> None:
        self._path = Path(path)
        self._queue: asyncio.Queue[dict | None] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._run(), name="request-log-writer")

    def emit(self, record: dict) -> bool:
        try:
            self._queue.put_nowait(record)
            return True
        except asyncio.QueueFull:
            return False

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[dict] = []
            item = await self._queue.get()
            while True:
                if item is None:  # the sentinel from aclose: write what came before it, then stop
                    stopping = True
                    break
                batch.append(item)
                if self._queue.empty() or len(batch) >= 1000:
                    break
                item = self._queue.get_nowait()
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[dict]) -> None:
        data = b"".join(orjson.dumps(r, default=str) + b"\n" for r in batch)
        try:
            await asyncio.to_thread(self._append, data)
        except OSError:
            logger.exception("request log write failed", extra={"records": len(batch)})

    def _append(self, data: bytes) -> None:
        with self._path.open("ab") as f:
            f.write(data)

    async def aclose(self) -> None:
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None


def make_sink(kind: str, *, path: str, queue_size: int) -> RequestLogSink:
    if kind == "jsonl":
        return JsonlFileSink(path, queue_size=queue_size)
    if kind == "none":
        return NullSink()
    raise ValueError(f"unknown request log sink {kind!r} (jsonl, none)")
