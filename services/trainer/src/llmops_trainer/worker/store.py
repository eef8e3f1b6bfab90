"""The worker's side of the job table, and the heartbeat that keeps a running job's row alive.

The store is the API's async SQLAlchemy code on an event loop in a thread of its own: Celery tasks are blocking
code, and one engine serves both the training thread's calls and the heartbeat.
"""

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from llmops_common import sql
from llmops_common.settings import DEFAULT_DATABASE_TIMEOUTS, DatabaseTimeouts

logger = logging.getLogger(__name__)


class JobStore:
    def __init__(self, database_url: str, timeouts: DatabaseTimeouts = DEFAULT_DATABASE_TIMEOUTS) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="job-store", daemon=True)
        self._thread.start()
        self.engine = sql.make_engine(database_url, timeouts)
        self.sessions = sql.make_sessionmaker(self.engine)

    def call(self, fn: Callable[..., Awaitable[Any]], /, timeout_s: float = 60.0, **kwargs) -> Any:
        """Runs ``fn(session, **kwargs)`` on the store's loop; blocks until it is done."""

        async def go():
            async with self.sessions() as session:
                return await fn(session, **kwargs)

        future = asyncio.run_coroutine_threadsafe(go(), self._loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()  # or it would go on holding a connection, and a retry would start a second one
            raise

    def call_with_retries(self, fn, /, attempts: int = 5, **kwargs) -> Any:
        """For the writes that end a job: a database blip must not turn a finished job into a lost one."""
        delay = 1.0
        for attempt in range(attempts):
            try:
                return self.call(fn, **kwargs)
            except Exception:
                if attempt == attempts - 1:
                    raise
                logger.warning("job store write failed; retrying", exc_info=True)
                threading.Event().wait(delay)
                delay = min(delay * 2, 15.0)

    def spawn(self, coroutine) -> "asyncio.Future":
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)


class Heartbeat:
    """While a job runs: every ``interval_s`` writes its liveness and latest progress, and reads its cancel flag.

    The training thread only touches ``progress`` (a dict it updates) and ``should_stop()``; it never waits on the
    database, so a slow database slows nothing but the heartbeat.
    """

    def __init__(self, store: JobStore, *, job_id: str, attempt: int, interval_s: float) -> None:
        from llmops_trainer.jobs import lifecycle

        self._lifecycle = lifecycle
        self.store, self.job_id, self.attempt, self.interval_s = store, job_id, attempt, interval_s
        self.progress: dict = {}
        self.cancelled = threading.Event()
        self.lost = threading.Event()  # another attempt owns the job now: stop without reporting
        self._task = None

    def should_stop(self) -> bool:
        return self.cancelled.is_set() or self.lost.is_set()

    def start(self) -> "Heartbeat":
        self._task = self.store.spawn(self._beat())
        return self

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def beat_once(self) -> None:
        owned, cancel = self.store.call(
            self._lifecycle.heartbeat, job_id=self.job_id, attempt=self.attempt, progress=dict(self.progress)
        )
        self._apply(owned, cancel)

    def _apply(self, owned: bool, cancel: bool) -> None:
        if not owned and not self.lost.is_set():
            logger.warning("job taken over by another attempt; stopping", extra={"job_id": self.job_id})
            self.lost.set()
        if cancel and not self.cancelled.is_set():
            logger.info("cancel requested", extra={"job_id": self.job_id})
            self.cancelled.set()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                async with self.store.sessions() as session:
                    owned, cancel = await self._lifecycle.heartbeat(
                        session, job_id=self.job_id, attempt=self.attempt, progress=dict(self.progress)
                    )
                self._apply(owned, cancel)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is down: keep training, keep trying
                logger.warning("heartbeat failed", exc_info=True, extra={"job_id": self.job_id})
