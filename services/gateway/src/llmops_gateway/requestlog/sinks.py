"""Request log sinks. ``emit`` never blocks the request: records queue up and a background task writes them."""

import asyncio
import logging
from abc import ABC, abstractmethod
from pathlib import Path

from pydantic import TypeAdapter

from llmops_common.contracts.requestlog import RequestLogRecord

logger = logging.getLogger(__name__)

_RECORD = TypeAdapter(RequestLogRecord)
_RECORDS = TypeAdapter(list[RequestLogRecord])


def jsonl(records: list[RequestLogRecord]) -> bytes:
    """Records as JSON lines (the file sink's and the spool's format)."""
    return b"".join(_RECORD.dump_json(r) + b"\n" for r in records)


def json_array(records: list[RequestLogRecord]) -> bytes:
    return _RECORDS.dump_json(records)


def from_jsonl(data: bytes) -> list[RequestLogRecord]:
    return [RequestLogRecord.model_validate_json(line) for line in data.splitlines() if line]


class RequestLogSink(ABC):
    @abstractmethod
    def emit(self, record: RequestLogRecord) -> bool:
        """Queue a record; False if it could not be queued."""

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class NullSink(RequestLogSink):
    def emit(self, record: RequestLogRecord) -> bool:
        return True


class BatchingSink(RequestLogSink):
    """Keeps records in memory and hands them to ``write_batch`` in batches from one background task.
    A batch waits up to ``linger_s`` for company, so a busy gateway makes one write per many requests
    rather than one each. On close, everything emitted before is written first. (A plain list, not an
    ``asyncio.Queue``: the queue's bookkeeping cost more than the record itself on the request path.)"""

    def __init__(self, *, queue_size: int, batch_size: int, linger_s: float = 0.05) -> None:
        self._pending: list[RequestLogRecord] = []
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._linger_s = linger_s
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task | None = None

    @abstractmethod
    async def write_batch(self, batch: list[RequestLogRecord]) -> None: ...

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{type(self).__name__}-writer")

    def emit(self, record: RequestLogRecord) -> bool:
        if len(self._pending) >= self._queue_size:
            return False
        self._pending.append(record)
        if not self._wakeup.is_set():
            self._wakeup.set()
        return True

    def take_pending(self) -> list[RequestLogRecord]:
        """Hands over the records not yet given to the writer (to write them elsewhere first: see the feedback
        sink's ratings)."""
        taken, self._pending = self._pending, []
        return taken

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if not self._closing and len(self._pending) < self._batch_size:
                await asyncio.sleep(self._linger_s)
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self._batch_size]
                del self._pending[: self._batch_size]
                try:
                    await self.write_batch(batch)
                except Exception:
                    logger.exception("request log batch lost", extra={"records": len(batch)})
            if self._closing:  # only now: what was emitted before the close is written first
                return

    async def aclose(self) -> None:
        if self._task is not None:
            self._closing = True
            self._wakeup.set()
            await self._task
            self._task = None


class JsonlFileSink(BatchingSink):
    """Appends one JSON object per line, writing in a worker thread."""

    def __init__(self, path: str | Path, *, queue_size: int = 10_000) -> None:
        super().__init__(queue_size=queue_size, batch_size=1000)
        self._path = Path(path)

    async def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        await super().start()

    async def write_batch(self, batch: list[RequestLogRecord]) -> None:
        data = jsonl(batch)
        await asyncio.to_thread(self._append, data)

    def _append(self, data: bytes) -> None:
        with self._path.open("ab") as f:
            f.write(data)
