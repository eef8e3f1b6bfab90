"""The retraining policy's guards, each shown to hold and to release: the cooldown between jobs, a dataset that must
differ from the last job's, and the stop after ``max_failures`` failed jobs in a row (until the policy is set again).

The policy's pass runs in-process on a real SQL store (the backend of the suite), over request records and ratings
stored by the service's own functions; the trainer is faked, since what a job does is not what these tests are about
(test_retraining.py runs a real one), only whether the pass submits one. The route's gateway is faked for the same
reason: ``put`` only checks that the champion is one of the route's variants.
"""

import asyncio
import time
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest

from llmops_common import sql
from llmops_common.contracts.ratings import RatingIn
from llmops_common.contracts.requestlog import RequestLogRecord
from llmops_feedback import db
from llmops_feedback.ratings import service as ratings
from llmops_feedback.records import service as records
from llmops_feedback.retraining import service as retraining
from llmops_feedback.retraining.models import RetrainingPolicy
from llmops_feedback.retraining.schemas import RetrainingIn


class FakeTrainer:
    """Takes every job and reports the state a test sets for it ("queued" until then)."""

    def __init__(self) -> None:
        self.submitted: list[dict] = []
        self.states: dict[str, str] = {}

    async def submit(self, job: dict) -> dict:
        self.submitted.append(job)
        job_id = f"job-{len(self.submitted)}"
        self.states[job_id] = "queued"
        return {"id": job_id, "state": "queued"}

    async def get(self, job_id: str) -> dict:
        return {"id": job_id, "state": self.states[job_id], "error": "worker died"}


class OneRoute:
    """A gateway that has every route, each with a ``base`` variant."""

    async def get(self, name: str) -> dict:
        return {"name": name, "variants": [{"name": "base", "upstream": "http://inference:8000/v1", "weight": 1.0}]}


class Loop:
    """A route's policy, its feedback and the controller's retraining pass, on one database."""

    def __init__(self, sessions, route: str) -> None:
        self.sessions, self.route, self.trainer = sessions, route, FakeTrainer()

    async def set_policy(self, **fields) -> None:
        data = RetrainingIn(model_name="guarded", champion="base", **fields)
        async with self.sessions() as session:
            await retraining.put(session, route=self.route, data=data, routes=OneRoute())

    async def corrections(self, count: int) -> None:
        """``count`` answers rated down with a correction: a training example each."""
        now = time.time()
        made = [
            RequestLogRecord(
                request_id=uuid.uuid4().hex,
                route=self.route,
                variant="base",
                status=200,
                prompt=[{"role": "user", "content": f"Who keeps lighthouse {uuid.uuid4().hex[:6]}?"}],
                answer="I do not know.",
                started_at=now - 1,
                finished_at=now - 1,
            )
            for _ in range(count)
        ]
        async with self.sessions() as session:
            await records.ingest(session, records=made, store_text=True)
            for record in made:
                rating = RatingIn(request_id=record.request_id, rating="down", correction="Odalys does.")
                await ratings.rate(session, data=rating, key_id=None, rated_by="admin", rated_at=sql.utcnow())

    async def step(self) -> RetrainingPolicy:
        """One controller pass over the retraining policies; the route's policy after it."""
        async with self.sessions() as session:
            state = SimpleNamespace(routes=OneRoute(), registry=None, trainer=self.trainer)  # what a pass reads
            await retraining.run_pass(session, state=state)
            return await retraining.get(session, route=self.route)

    async def fail_last_job(self) -> RetrainingPolicy:
        self.trainer.states[f"job-{len(self.trainer.submitted)}"] = "failed"
        policy = await self.step()  # the pass that sees the failure records it and does nothing else
        assert policy.job_state == "failed" and "worker died" in policy.status
        return policy

    async def age_last_job(self, seconds: float) -> None:
        """Time passes: the last job was submitted ``seconds`` earlier than it was."""
        async with self.sessions() as session:
            policy = await retraining.get(session, route=self.route)
            policy.started_at -= timedelta(seconds=seconds)
            await session.commit()


@pytest.fixture
def database(new_database):
    """A database of the test's own: a pass steps every policy stored, and each test's trainer knows only its jobs."""
    url = new_database()

    async def migrate() -> None:
        engine = sql.make_engine(url)
        try:
            await db.migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(migrate())
    return url


def _run(database: str, scenario) -> None:
    async def main() -> None:
        engine = sql.make_engine(database)
        try:
            await scenario(Loop(sql.make_sessionmaker(engine), f"route-{uuid.uuid4().hex[:10]}"))
        finally:
            await engine.dispose()

    asyncio.run(main())


def test_the_cooldown_holds_a_job_back_until_it_is_over(database):
    async def scenario(loop: Loop) -> None:
        await loop.set_policy(min_examples=2, cooldown_s=3600, max_failures=10)
        await loop.corrections(2)
        assert (await loop.step()).job_id == "job-1"
        await loop.fail_last_job()
        await loop.corrections(3)  # enough new examples: only the cooldown stands in the way
        policy = await loop.step()
        assert policy.status.startswith("cooling down until") and len(loop.trainer.submitted) == 1
        await loop.age_last_job(3500)
        assert (await loop.step()).status.startswith("cooling down until")  # 100 s to go
        await loop.age_last_job(101)
        policy = await loop.step()
        assert policy.job_id == "job-2" and policy.dataset_examples == 5, policy.status

    _run(database, scenario)


def test_the_last_jobs_dataset_is_not_trained_again(database):
    async def scenario(loop: Loop) -> None:
        await loop.set_policy(min_examples=2, cooldown_s=0, max_failures=10)
        await loop.corrections(2)
        first = await loop.step()
        assert first.job_id == "job-1" and len(first.dataset_hash) == 64
        await loop.fail_last_job()
        for _ in range(2):  # the job failed and nothing changed since: the same data is not submitted again
            policy = await loop.step()
            assert policy.status == "waiting: the dataset is the last job's" and len(loop.trainer.submitted) == 1
        await loop.corrections(1)  # the dataset changed: this guard lets go, the count guard still holds
        assert (await loop.step()).status == "waiting: 1 new training examples of 2"
        await loop.corrections(1)
        policy = await loop.step()
        assert policy.job_id == "job-2" and policy.dataset_hash != first.dataset_hash

    _run(database, scenario)


def test_failed_jobs_in_a_row_stop_the_policy_until_it_is_set_again(database):
    async def scenario(loop: Loop) -> None:
        await loop.set_policy(min_examples=1, cooldown_s=0, max_failures=2)
        for job in ("job-1", "job-2"):
            await loop.corrections(1)
            assert (await loop.step()).job_id == job
            policy = await loop.fail_last_job()
        assert policy.failures == 2
        await loop.corrections(5)  # new data, no cooldown: only the failures stand in the way
        for _ in range(2):
            policy = await loop.step()
            assert policy.status == "stopped after 2 failed jobs in a row; update the policy to try again"
            assert len(loop.trainer.submitted) == 2
        await loop.set_policy(min_examples=1, cooldown_s=0, max_failures=2)  # an admin sets it again
        policy = await loop.step()
        assert policy.failures == 0 and policy.job_id == "job-3" and policy.dataset_examples == 7

    _run(database, scenario)
