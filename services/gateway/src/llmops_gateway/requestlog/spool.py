"""A durable on-disk queue of what waits for the feedback service: request-record batches and ratings, one file
each, written whole or not at all."""

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llmops_common.contracts.requestlog import RequestLogRecord
from llmops_gateway.requestlog.sinks import jsonl

RECORDS_SUFFIX = ".jsonl"  # a batch of request records, as JSON lines
RATING_SUFFIX = ".rating.json"  # one rating (``feedback.delivery.RatingDelivery``)


class Spool:
    """Files are named by creation time, so replay goes oldest first: a rating spooled after its request's record
    is delivered after it. Several gateway processes may share the directory (a restarted replica replays what its
    predecessor left): a file is taken under an exclusive lock, so no two processes send it at once."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.rejected = self.directory / "rejected"

    def prepare(self) -> None:
        self.rejected.mkdir(parents=True, exist_ok=True)

    def write(self, records: list[RequestLogRecord]) -> Path:
        return self._write(jsonl(records), suffix=RECORDS_SUFFIX)

    def write_rating(self, data: bytes) -> Path:
        return self._write(data, suffix=RATING_SUFFIX)

    def _write(self, data: bytes, *, suffix: str) -> Path:
        """Durably: fsync'd under a temporary name, then renamed into place."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{id(data):x}{suffix}"
        temporary = self.directory / f".{name}.tmp"
        try:
            with temporary.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            # A full disk: a half-written file would hold on to the little space left, and never be replayed.
            temporary.unlink(missing_ok=True)
            raise
        path = self.directory / name
        temporary.rename(path)
        return path

    def files(self) -> list[Path]:
        """Oldest first, both kinds."""
        found = [*self.directory.glob(f"*{RECORDS_SUFFIX}"), *self.directory.glob(f"*{RATING_SUFFIX}")]
        return sorted(found, key=lambda path: path.name)

    def pending_records(self) -> int:
        total = 0
        for path in self.directory.glob(f"*{RECORDS_SUFFIX}"):
            try:
                with path.open("rb") as f:
                    total += sum(1 for _ in f)
            except FileNotFoundError:
                pass  # another process just delivered it
        return total

    def pending_ratings(self) -> int:
        return sum(1 for _ in self.directory.glob(f"*{RATING_SUFFIX}"))

    @contextmanager
    def take(self, path: Path) -> Iterator[bytes | None]:
        """Yields the file's content under a lock (None if another process holds it or it is gone);
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
            yield handle.read()

    @staticmethod
    def done(path: Path) -> None:
        path.unlink(missing_ok=True)

    def reject(self, path: Path) -> Path:
        """Keeps what the feedback service refused as invalid, for a person to look at."""
        target = self.rejected / path.name
        path.rename(target)
        return target
