"""The spend recorder on real SQL: spend summed in memory survives a failed write (kept for the next flush, never
lost or counted twice), and two recorders (two replicas) adding to the same rows at once sum exactly."""

import asyncio
import uuid

from sqlalchemy import select

from llmops_common import sql
from llmops_gateway.db import migrate
from llmops_gateway.spend.models import SpendRow
from llmops_gateway.spend.recorder import SpendRecorder

HOUR = 1_800_000_000  # a whole hour's start, epoch seconds


def _add(
    recorder: SpendRecorder, key_id: str, *, variant: str = "v", prompt: str = "", cost: int = 100, at: float = HOUR + 5
) -> None:
    recorder.add(
        at=at,
        key_id=key_id,
        team="t",
        route="r",
        variant=variant,
        prompt_version=prompt,
        price_id=1,
        prompt_tokens=10,
        cached_tokens=2,
        completion_tokens=5,
        cost_nanos=cost,
    )


async def _rows(sessions, key_id: str) -> list[SpendRow]:
    async with sessions() as session:
        return list((await session.scalars(select(SpendRow).where(SpendRow.key_id == key_id))).all())


def test_spend_kept_through_a_failed_write(llmops_state_dir):
    async def run() -> None:
        engine = sql.make_engine(f"sqlite+aiosqlite:///{llmops_state_dir / f'spend-{uuid.uuid4().hex[:6]}.db'}")
        sessions = sql.make_sessionmaker(engine)
        recorder = SpendRecorder(sessions, interval_s=3600)
        try:
            for _ in range(3):
                _add(recorder, "key_a")
            _add(recorder, "key_a", variant="w", at=HOUR + 3600)  # the next hour: a row of its own
            _add(recorder, "key_a", prompt="persona/2")  # another prompt version: a row of its own
            await recorder.flush()  # no spend table yet: the write fails, the sums stay
            await migrate(engine)
            _add(recorder, "key_a")  # added meanwhile: summed with what is kept
            await recorder.flush()
            rows = sorted(await _rows(sessions, "key_a"), key=lambda r: (r.hour, r.prompt_version))
            summed = [
                (r.variant, r.prompt_version, r.requests, r.prompt_tokens, r.cached_tokens, r.cost_nanos) for r in rows
            ]
            assert summed == [
                ("v", "", 4, 40, 8, 400),
                ("v", "persona/2", 1, 10, 2, 100),
                ("w", "", 1, 10, 2, 100),
            ]
            await recorder.flush()  # nothing pending: nothing written twice
            assert sum(r.requests for r in await _rows(sessions, "key_a")) == 6
        finally:
            await recorder.aclose()
            await engine.dispose()

    asyncio.run(run())


def test_two_recorders_add_to_the_same_rows_exactly(sql_url):
    async def run() -> None:
        engine = sql.make_engine(sql_url)
        await migrate(engine)
        sessions = sql.make_sessionmaker(engine)
        replicas = [SpendRecorder(sessions, interval_s=3600) for _ in range(2)]
        key_id = f"key_{uuid.uuid4().hex[:8]}"
        try:
            for round_ in range(5):
                for i, recorder in enumerate(replicas):
                    for variant in ("a", "b", "c"):  # several rows per flush, in both recorders
                        _add(recorder, key_id, variant=variant, cost=round_ * 10 + i)
                await asyncio.gather(*(r.flush() for r in replicas))
            rows = {r.variant: r for r in await _rows(sessions, key_id)}
            expected_cost = sum(round_ * 10 + i for round_ in range(5) for i in range(2))
            assert {v: (r.requests, r.cost_nanos) for v, r in rows.items()} == {
                v: (10, expected_cost) for v in ("a", "b", "c")
            }
        finally:
            for recorder in replicas:
                await recorder.aclose()
            await engine.dispose()

    asyncio.run(run())
