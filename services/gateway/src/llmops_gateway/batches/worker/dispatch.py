"""The dispatcher, in every batch worker's main process: each round it starts new batches, sends their shards as
Celery tasks, sends again the shards whose lease ran out (their worker died), stops the pending shards of cancelled
batches, and finalises the batches that are done. Several dispatchers (one per worker) are safe: each step is a
conditional update that only one of them wins.

Why the workers dispatch and not the API: the gateway's API then needs no broker connection, and one mechanism
covers both a new shard and one whose worker was lost.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import and_, func, or_, select, update

from llmops_common import sql
from llmops_common.errors import log_failed_round
from llmops_common.sql import utcnow
from llmops_gateway.batches.models import Batch, Shard
from llmops_gateway.batches.worker import finalize
from llmops_gateway.batches.worker.health import WorkerMetrics
from llmops_gateway.files.store import ObjectStore
from llmops_gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)
STATUSES = ("validating", "in_progress", "finalizing", "completed", "cancelling", "cancelled", "expired", "failed")


class Dispatcher:
    def __init__(self, settings: GatewaySettings, send: Callable[[str, int], None], metrics: WorkerMetrics) -> None:
        self.settings, self._send, self.metrics = settings, send, metrics
        self.lease = timedelta(seconds=settings.batch_lease_s)
        self.lost_after = max(10 * self.lease, timedelta(minutes=10))
        self.finalize_stale = timedelta(seconds=settings.batch_finalize_stale_s)

    async def forever(self) -> None:
        engine = sql.make_engine(self.settings.database_url, self.settings.database_timeouts)
        self.sessions = sql.make_sessionmaker(engine)
        self.store = ObjectStore(self.settings.files_url)
        try:
            while True:
                try:
                    await self.tick()
                except Exception as exc:  # noqa: BLE001 - a database blip must not end dispatching for good
                    log_failed_round(logger, "dispatch round failed", exc)
                await asyncio.sleep(self.settings.batch_dispatch_interval_s)
        finally:
            await engine.dispose()

    async def tick(self) -> None:
        now = utcnow()
        async with self.sessions() as session:
            await session.execute(
                update(Batch).where(Batch.status == "validating").values(status="in_progress", in_progress_at=now)
            )
            # Past its completion window a batch stops like a cancelled one and ends "expired" (finalize).
            await session.execute(
                update(Batch)
                .where(Batch.status == "in_progress", Batch.expires_at < now)
                .values(status="cancelling", expired_at=now)
            )
            cancelling = select(Batch.id).where(Batch.status == "cancelling")
            await session.execute(
                update(Shard).where(Shard.batch_id.in_(cancelling), Shard.status == "pending").values(status="stopped")
            )
            await session.commit()
            sent = await self._dispatch_due(session, now)
            by_status = dict((await session.execute(select(Batch.status, func.count()).group_by(Batch.status))).all())
            open_batches = (
                await session.scalars(
                    select(Batch.id).where(Batch.status.in_(("in_progress", "cancelling", "finalizing")))
                )
            ).all()
        for status in STATUSES:
            self.metrics.batches.labels(status).set(by_status.get(status, 0))
        for batch_id, index, attempt in sent:
            await asyncio.to_thread(self._send, batch_id, index)
            self.metrics.dispatched.labels("first" if attempt == 1 else "again").inc()
            logger.info("shard dispatched", extra={"batch": batch_id, "shard": index, "attempt": attempt})
        for batch_id in open_batches:
            if await finalize.finalize_if_ready(
                self.sessions, self.store, batch_id=batch_id, stale=self.finalize_stale
            ):
                self.metrics.finalized.inc()

    async def _dispatch_due(self, session, now) -> list[tuple[str, int, int]]:
        """Shards never sent, running shards whose lease ran out (not sent again within the last lease), and pending
        shards whose message seems lost."""
        due = (
            await session.execute(
                select(Shard.batch_id, Shard.index, Shard.dispatched_at, Shard.attempts)
                .join(Batch, Batch.id == Shard.batch_id)
                .where(
                    Batch.status == "in_progress",
                    Shard.status.in_(("pending", "running")),
                    or_(
                        Shard.dispatched_at.is_(None),
                        and_(Shard.lease_until < now, Shard.dispatched_at < now - self.lease),
                        # A message lost with the broker (a Redis without persistence restarted): sent again after a
                        # long while; a copy still queued finds the shard claimed or done and does nothing.
                        and_(Shard.status == "pending", Shard.dispatched_at < now - self.lost_after),
                    ),
                )
                .order_by(Batch.created_at, Shard.index)
                .limit(1000)
            )
        ).all()
        sent = []
        for batch_id, index, dispatched_at, attempts in due:
            unchanged = Shard.dispatched_at.is_(None) if dispatched_at is None else Shard.dispatched_at == dispatched_at
            won = await session.execute(
                update(Shard)
                .where(Shard.batch_id == batch_id, Shard.index == index, unchanged)
                .values(dispatched_at=now, attempts=Shard.attempts + 1)
            )
            if won.rowcount == 1:
                sent.append((batch_id, index, attempts + 1))
        await session.commit()
        return sent
