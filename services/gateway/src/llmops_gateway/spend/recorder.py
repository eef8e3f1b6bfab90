"""Spend recorded per request, written to SQL summed: one upsert per hour, key, route, variant, prompt version and
price version every ``interval_s``, whatever the request rate. Replicas add to the same rows (the upsert increments
them), so the SQL store holds the platform's spend, not a replica's.

The hot path only adds integers to a dict. Budgets are not enforced from here (Redis reserves them before each
request, quotas/); this is the record that reports read. A crash loses at most ``interval_s`` of it.
"""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llmops_common.sql import dialect_insert
from llmops_gateway.spend.models import SpendRow

logger = logging.getLogger(__name__)

_SUMS = ("requests", "prompt_tokens", "cached_tokens", "completion_tokens", "cost_nanos")
_MAX_PENDING = 100_000  # rows held while SQL is down; beyond it new spend is counted as lost, never grows memory


class SpendRecorder:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, interval_s: float, on_lost=None) -> None:
        self._sessions = sessions
        self._interval_s = interval_s
        self._pending: dict[tuple, list[int]] = {}
        self._flusher: asyncio.Task | None = None
        self._on_lost = on_lost  # called with a request count when spend rows cannot be kept
        self._closed = False

    def add(
        self,
        *,
        at: float,
        key_id: str,
        team: str | None,
        route: str,
        variant: str,
        prompt_version: str,
        price_id: int,
        prompt_tokens: int,
        cached_tokens: int,
        completion_tokens: int,
        cost_nanos: int,
    ) -> None:
        hour = int(at // 3600) * 3600
        row_key = (hour, key_id, team or "", route, variant, prompt_version, price_id)
        sums = self._pending.get(row_key)
        if sums is None:
            if len(self._pending) >= _MAX_PENDING:
                if self._on_lost is not None:
                    self._on_lost(1)
                return
            sums = self._pending[row_key] = [0, 0, 0, 0, 0]
        sums[0] += 1
        sums[1] += prompt_tokens
        sums[2] += cached_tokens
        sums[3] += completion_tokens
        sums[4] += cost_nanos
        if self._flusher is None and not self._closed:
            self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self._interval_s)
        finally:
            self._flusher = None
            await self.flush()  # also when cancelled at shutdown

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        rows = [
            {
                "hour": datetime.fromtimestamp(hour, UTC),
                "key_id": key_id,
                "team": team,
                "route": route,
                "variant": variant,
                "prompt_version": prompt_version,
                "price_id": price_id,
                **dict(zip(_SUMS, sums, strict=True)),
            }
            # Sorted: every replica locks the rows it adds to in one order, so two flushes never deadlock.
            for (hour, key_id, team, route, variant, prompt_version, price_id), sums in sorted(pending.items())
        ]
        try:
            async with self._sessions() as session:
                insert = dialect_insert(session)(SpendRow)
                table = SpendRow.__table__
                statement = insert.on_conflict_do_update(
                    index_elements=["hour", "key_id", "team", "route", "variant", "prompt_version", "price_id"],
                    set_={name: table.c[name] + insert.excluded[name] for name in _SUMS},
                )
                await session.execute(statement, rows)
                await session.commit()
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("spend not written; retried with the next flush", extra={"error": repr(exc)})
            for row_key, sums in pending.items():  # back into the next flush, summed with what came meanwhile
                mine = self._pending.setdefault(row_key, [0, 0, 0, 0, 0])
                for i, value in enumerate(sums):
                    mine[i] += value
            if self._closed:
                logger.error("spend lost at shutdown", extra={"rows": len(pending)})
            elif self._flusher is None:
                self._flusher = asyncio.create_task(self._flush_later())

    async def aclose(self) -> None:
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
