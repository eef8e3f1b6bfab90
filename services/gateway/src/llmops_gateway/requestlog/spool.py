"""A durable on-disk queue of record batches: one JSONL file per batch, written whole or not at all."""

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llmops_common.contracts.requestlog import RequestLogRecord
from llmops_gateway.requestlog.sinks import from_jsonl, jsonl


class Spool:
    """Files are named by creation time, so replay goes oldest first. Several gateway processes may
    share the directory (a restarted replica replays what its predecessor left): a file is taken under
    an exclusive lock, so no two processes send it at once."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.rejected = self.directory / "rejected"

    def prepare(self) -> None:
        self.rejected.mkdir(parents=True, exist_ok=True)

    def write(self, records: list[RequestLogRecord]) -> Path:
        """Durably: fsync'd under a temporary name, then renamed into place."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{id(records):x}.jsonl"
        temporary = self.directory / f".{name}.tmp"
        with temporary.open("wb") as f:
            f.write(jsonl(records))
            f.flush()
            os.fsync(f.fileno())
        path = self.directory / name
        temporary.rename(path)
        return path

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("*.jsonl"))

    def pending_records(self) -> int:
        total = 0
        for path in self.files():
            try:
                with path.open("rb") as f:
                    total += sum(1 for _ in f)
            except FileNotFoundError:
                pass  # another process just delivered it
        return total

    @contextmanager
    def take(self, path: Path) -> Iterator[list[RequestLogRecord] | None]:
        """Yields the file's records under a lock (None if another process holds it or it is gone);
        ``done(path)`` inside the block removes it."""
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            yield None
            return
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
            if not path.exists():  # delivered by the process that held the lock before us
                yield None
                return
            yield from_jsonl(handle.read())

    @staticmethod
    def done(path: Path) -> None:
        path.unlink(missing_ok=True)

    def reject(self, path: Path) -> Path:
        """Keeps a batch the feedback service refused as invalid, for a person to look at."""
        target = self.rejected / path.name
        path.rename(target)
        return target
