"""One shard run by one Celery task: claim its lease, run the lines not yet done, record each as it ends.

The checkpoint is the results table: a line's outcome is written once (its primary key) the moment it ends, with
the lease renewed in the same transaction. A worker killed mid-shard loses only the lines in flight; the shard's
lease runs out, the dispatcher sends the shard again, and the next run skips every line already recorded. So no
line is lost and none is written twice. Cancel is read between lines: a shard stops after the lines it has in
flight (at most ``GATEWAY_BATCH_LINE_CONCURRENCY``).
"""

import asyncio
import contextlib
import logging
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmops_common import sql
from llmops_common.sql import utcnow
from llmops_gateway.batches import input as batch_input
from llmops_gateway.batches.input import InputLine
from llmops_gateway.batches.models import Batch, LineResult, Shard
from llmops_gateway.batches.worker import finalize
from llmops_gateway.batches.worker.engine import VllmEngine, takes
from llmops_gateway.batches.worker.lines import LineOutcome, LineSender
from llmops_gateway.batches.worker.offline import EngineLines
from llmops_gateway.files.models import StoredFile
from llmops_gateway.files.store import ObjectStore
from llmops_gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)


async def run_shard(settings: GatewaySettings, *, batch_id: str, index: int, engine: VllmEngine | None = None) -> str:
    """``engine``: the worker's own (``GATEWAY_BATCH_ENGINE=vllm``), for the chat lines it can run."""
    database = sql.make_engine(settings.database_url, settings.database_timeouts)
    sessions = sql.make_sessionmaker(database)
    try:
        return await ShardRun(settings, sessions, batch_id=batch_id, index=index, engine=engine).run()
    finally:
        await database.dispose()


class ShardRun:
    def __init__(
        self,
        settings: GatewaySettings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        batch_id: str,
        index: int,
        engine: VllmEngine | None = None,
    ) -> None:
        self.settings, self.sessions, self.engine = settings, sessions, engine
        self.batch_id, self.index = batch_id, index
        self.owner = uuid.uuid4().hex
        self.lease = timedelta(seconds=settings.batch_lease_s)
        self.finalize_stale = timedelta(seconds=settings.batch_finalize_stale_s)
        self.stop_reason: str | None = None  # "cancelled" or "lease_lost"

    async def run(self) -> str:
        async with self.sessions() as session:
            shard = await self._claim(session)
            if shard is None:
                return "not_claimed"  # done, or another worker holds it
            batch = await session.get(Batch, self.batch_id)
            source = await session.get(StoredFile, batch.input_file_id)
            done = set(
                (
                    await session.scalars(
                        select(LineResult.line).where(
                            LineResult.batch_id == self.batch_id,
                            LineResult.line >= shard.first_line,
                            LineResult.line < shard.end_line,
                        )
                    )
                ).all()
            )
        store = ObjectStore(self.settings.files_url)
        lines = batch_input.read_lines(await store.get(source.object_name))
        todo = [i for i in range(shard.first_line, shard.end_line) if i not in done]
        on_engine = [i for i in todo if self._engine_takes(batch.endpoint, lines[i])]
        served = sorted(set(todo) - set(on_engine))
        logger.info("shard claimed", extra={"batch": self.batch_id, "shard": self.index, "lines": len(todo)})
        async with httpx.AsyncClient(
            base_url=self.settings.batch_gateway_url, timeout=self.settings.upstream_read_timeout_s + 30
        ) as client:
            sender = LineSender(
                client,
                token=self.settings.batch_token or "",
                key_id=batch.key_id,
                batch_id=self.batch_id,
                endpoint=batch.endpoint,
                retry_limit=self.settings.batch_retry_limit,
                priority=self.settings.batch_priority,
            )
            heartbeat = asyncio.create_task(self._heartbeat())
            try:
                jobs = [self._serve(sender, lines, served)]
                if on_engine:
                    runner = EngineLines(
                        client,
                        self.engine,
                        token=self.settings.batch_token or "",
                        key_id=batch.key_id,
                        batch_id=self.batch_id,
                        retry_limit=self.settings.batch_retry_limit,
                    )
                    jobs.append(self._on_engine(runner, sender, lines, on_engine))
                await asyncio.gather(*jobs)
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
        return await self._end()

    def _engine_takes(self, endpoint: str, line: InputLine) -> bool:
        return (
            self.engine is not None
            and endpoint == "/v1/chat/completions"
            and line.error is None
            and line.url == endpoint
            and takes(line.body)
        )

    async def _serve(self, sender: LineSender, lines: list, todo: list[int]) -> None:
        """Lines through the gateway's serving path, ``GATEWAY_BATCH_LINE_CONCURRENCY`` at a time."""
        queue = list(reversed(todo))
        await asyncio.gather(
            *(self._work(sender, lines, queue) for _ in range(min(self.settings.batch_line_concurrency, len(todo))))
        )

    async def _work(self, sender: LineSender, lines: list, queue: list[int]) -> None:
        while queue and self.stop_reason is None:
            index = queue.pop()
            outcome = await sender.run(index, lines[index], lambda: self.stop_reason is not None)
            if outcome is None:
                return
            await self._record([(index, outcome)])

    async def _on_engine(self, runner: EngineLines, sender: LineSender, lines: list, todo: list[int]) -> None:
        """Lines on the worker's engine, a chunk at a time; cancel is read between chunks."""
        size, serving = self.settings.batch_engine_chunk_lines, []
        while todo and self.stop_reason is None:
            chunk, todo = todo[:size], todo[size:]
            done = await runner.run([(index, lines[index]) for index in chunk])
            await self._record(done.outcomes)
            if done.serve:  # their route chose a variant the engine does not serve
                serving.append(asyncio.create_task(self._serve(sender, lines, done.serve)))
            if done.retry:  # refused by a quota that waiting cures
                todo = done.retry + todo
                await asyncio.sleep(done.wait_s)
        await asyncio.gather(*serving)

    async def _claim(self, session: AsyncSession) -> Shard | None:
        now = utcnow()
        claimed = await session.execute(
            update(Shard)
            .where(
                Shard.batch_id == self.batch_id,
                Shard.index == self.index,
                Shard.status.in_(("pending", "running")),
                (Shard.lease_until.is_(None)) | (Shard.lease_until < now),
            )
            .values(status="running", owner=self.owner, lease_until=now + self.lease)
        )
        await session.commit()
        if claimed.rowcount != 1:
            return None
        return await session.get(Shard, (self.batch_id, self.index))

    async def _record(self, outcomes: list[tuple[int, LineOutcome]]) -> None:
        """The lines' outcomes and a fresh lease, in one transaction; a line already recorded stays as it was."""
        if not outcomes:
            return
        async with self.sessions() as session:
            insert = sql.dialect_insert(session)
            await session.execute(
                insert(LineResult)
                .values(
                    [
                        {
                            "batch_id": self.batch_id,
                            "line": index,
                            "ok": outcome.ok,
                            "output": outcome.output,
                            "prompt_tokens": outcome.prompt_tokens,
                            "completion_tokens": outcome.completion_tokens,
                        }
                        for index, outcome in outcomes
                    ]
                )
                .on_conflict_do_nothing()
            )
            await self._renew(session)
            await session.commit()

    async def _renew(self, session: AsyncSession) -> None:
        """Renews the lease while this run owns it, and reads whether the batch is being cancelled."""
        renewed = await session.execute(
            update(Shard)
            .where(Shard.batch_id == self.batch_id, Shard.index == self.index, Shard.owner == self.owner)
            .values(lease_until=utcnow() + self.lease)
        )
        if renewed.rowcount != 1:
            self.stop_reason = "lease_lost"  # another run took the shard over: it finishes the lines
            return
        status = await session.scalar(select(Batch.status).where(Batch.id == self.batch_id))
        if status in ("cancelling", "cancelled", "expired", "failed"):
            self.stop_reason = "cancelled"

    async def _heartbeat(self) -> None:
        """Keeps the lease while lines take long (a slow model), and notices a cancel between recorded lines."""
        while True:
            await asyncio.sleep(min(self.settings.batch_lease_s / 3, 1.0))
            async with self.sessions() as session:
                await self._renew(session)
                await session.commit()

    async def _end(self) -> str:
        if self.stop_reason == "lease_lost":
            return "lease_lost"
        status = "stopped" if self.stop_reason == "cancelled" else "done"
        async with self.sessions() as session:
            await session.execute(
                update(Shard)
                .where(Shard.batch_id == self.batch_id, Shard.index == self.index, Shard.owner == self.owner)
                .values(status=status, lease_until=None)
            )
            await session.commit()
        store = ObjectStore(self.settings.files_url)
        await finalize.finalize_if_ready(self.sessions, store, batch_id=self.batch_id, stale=self.finalize_stale)
        logger.info("shard ended", extra={"batch": self.batch_id, "shard": self.index, "status": status})
        return status
