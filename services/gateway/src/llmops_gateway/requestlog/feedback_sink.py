"""The request log sink that delivers to the feedback service, at least once; ratings wait in its spool too."""

import asyncio
import contextlib
import logging

import aiohttp
from opentelemetry.trace import SpanKind

from llmops_common import tracing
from llmops_common.contracts.requestlog import RequestLogRecord
from llmops_common.http import describe_error
from llmops_gateway.feedback.delivery import FeedbackUnreachable, RatingDelivery, post_rating
from llmops_gateway.metrics import GatewayMetrics
from llmops_gateway.requestlog.sinks import BatchingSink, from_jsonl, json_array
from llmops_gateway.requestlog.spool import RATING_SUFFIX, Spool

logger = logging.getLogger(__name__)


class _Refused(Exception):
    """The feedback service rejected the batch as invalid: sending it again cannot help."""


class FeedbackSink(BatchingSink):
    """Records batch up in memory and go to ``POST /v1/requests``. A batch the service does not take
    (down, timing out, 5xx) is written to the spool on disk and replayed, oldest first, with back-off,
    until it is taken. The service ignores request ids it already has, so replaying a batch that in fact
    arrived is harmless: every record arrives, exactly once. Nothing here runs on the request path.

    Ratings the feedback service could not take wait in the same spool (``spool_rating``), after the records
    emitted before them, and are replayed in that order; their idempotency keys make a replay harmless too."""

    def __init__(
        self,
        *,
        url: str,
        token: str,
        spool_dir: str,
        metrics: GatewayMetrics,
        queue_size: int = 10_000,
        batch_size: int = 500,
        timeout_s: float = 5.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        super().__init__(queue_size=queue_size, batch_size=batch_size)
        self._base_url = url.rstrip("/")
        self._url = self._base_url + "/v1/requests"
        self._token = token
        self._headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        self._spool = Spool(spool_dir)
        self._metrics = metrics
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_backoff_s = max_backoff_s
        self._http: aiohttp.ClientSession | None = None
        self._replayer: asyncio.Task | None = None
        self._wake_replayer = asyncio.Event()
        self._reachable = True  # while False, new batches go straight to the spool

    async def start(self) -> None:
        self._spool.prepare()
        self._http = aiohttp.ClientSession(timeout=self._timeout, trace_configs=tracing.aiohttp_trace_configs())
        self._metrics.request_log_spooled.set(self._spool.pending_records())
        self._metrics.ratings_spooled.set(self._spool.pending_ratings())
        self._replayer = asyncio.create_task(self._replay_forever(), name="request-log-replayer")
        await super().start()

    async def aclose(self) -> None:
        await super().aclose()  # the last batches are delivered or spooled
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
        if self._http is not None:
            await self._http.close()

    async def write_batch(self, batch: list[RequestLogRecord]) -> None:
        if self._reachable:
            try:
                await self._deliver(batch)
                return
            except _Refused as exc:
                with self._keeping(len(batch)):
                    self._keep_refused(self._spool.write(batch), exc)
                return
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                self._reachable = False
                logger.warning(
                    "feedback service unreachable; spooling request records", extra={"error": describe_error(exc)}
                )
        with self._keeping(len(batch)):
            await asyncio.to_thread(self._spool.write, batch)
            self._metrics.request_log_spooled.inc(len(batch))
        self._wake_replayer.set()

    @contextlib.contextmanager
    def _keeping(self, records: int):
        """A spool write that fails (disk full, read-only, gone) loses the records: counted and logged, never raised,
        so requests keep being served and the next batches still get their chance (space may come back)."""
        try:
            yield
        except OSError as exc:
            self._metrics.request_log_lost.inc(records)
            logger.error(
                "request records lost: the feedback service is unreachable and the spool cannot keep them",
                extra={"records": records, "spool_dir": str(self._spool.directory), "error": repr(exc)},
            )

    @property
    def reachable(self) -> bool:
        """False from a failed delivery until the spool is replayed: meanwhile everything goes to the spool."""
        return self._reachable

    async def spool_rating(self, delivery: RatingDelivery) -> None:
        """Keeps a rating on disk until the feedback service takes it. Records still in memory here go to disk
        first, so a rating of a request just answered is replayed after that request's record."""
        records = self.take_pending()
        if records:
            with self._keeping(len(records)):
                await asyncio.to_thread(self._spool.write, records)
                self._metrics.request_log_spooled.inc(len(records))
        await asyncio.to_thread(self._spool.write_rating, delivery.model_dump_json().encode())
        self._metrics.ratings_spooled.inc()
        self._reachable = False
        self._wake_replayer.set()

    async def _deliver(self, batch: list[RequestLogRecord]) -> None:
        body = b'{"records":' + json_array(batch) + b"}"  # the feedback service's RequestLogBatch
        # A batch holds many requests' records: its delivery is a trace of its own; each record keeps its
        # request's trace id, which is how a request and its stored record are found from each other.
        with tracing.span("deliver request log", kind=SpanKind.PRODUCER, attributes={"llmops.records": len(batch)}):
            async with self._http.post(self._url, data=body, headers=self._headers) as response:
                if response.status in (400, 413, 422):
                    raise _Refused(f"{response.status}: {(await response.text())[:500]}")
                response.raise_for_status()
        self._metrics.request_log_delivered.inc(len(batch))

    async def _replay_forever(self) -> None:
        backoff = 0.5
        while True:
            self._wake_replayer.clear()  # before the replay: what is spooled during it wakes the next one at once
            if await self._replay_all():
                self._reachable, backoff = True, 0.5
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_replayer.wait(), timeout=5.0)  # also catch others' leftovers
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)

    async def _replay_all(self) -> bool:
        """Sends every spooled batch and rating, oldest first; False at the first failure."""
        for path in self._spool.files():
            with self._spool.take(path) as data:
                if data is None:
                    continue
                is_rating = path.name.endswith(RATING_SUFFIX)
                gauge = self._metrics.ratings_spooled if is_rating else self._metrics.request_log_spooled
                try:
                    if is_rating:
                        await self._deliver_rating(RatingDelivery.model_validate_json(data))
                        count = 1
                    else:
                        batch = from_jsonl(data)
                        await self._deliver(batch)
                        count = len(batch)
                except (aiohttp.ClientError, TimeoutError, OSError, FeedbackUnreachable):
                    return False
                except (_Refused, ValueError) as exc:  # ValueError: a file that does not parse
                    self._keep_refused(path, exc)
                    gauge.dec(1 if is_rating else data.count(b"\n"))
                    continue
                self._spool.done(path)
                gauge.dec(count)
        return True

    async def _deliver_rating(self, delivery: RatingDelivery) -> None:
        status, content = await post_rating(self._http, delivery, url=self._base_url, token=self._token)
        if status in (400, 404, 409, 413, 422):
            raise _Refused(f"{status}: {content[:500]!r}")
        if status >= 300:  # 401/403/429...: a setting or a limit that may change; try again later
            raise FeedbackUnreachable(f"{status}: {content[:200]!r}")
        self._metrics.ratings_delivered.inc()

    def _keep_refused(self, path, exc: Exception) -> None:
        kept = self._spool.reject(path)
        is_rating = path.name.endswith(RATING_SUFFIX)
        (self._metrics.ratings_rejected if is_rating else self._metrics.request_log_rejected).inc()
        logger.error(
            f"feedback service refused a spooled {'rating' if is_rating else 'request-log batch'}; kept for inspection",
            extra={"path": str(kept), "error": str(exc)},
        )
