"""Fixtures of the gateway's tests: a Redis client on the tests' Redis; for the batch tests, a gateway with a small
file limit and shards, the feedback service its request log goes to, a stand-in retriever for lines with RAG, and
batch workers per test."""

import uuid

import pytest
import redis

from llmops_testkit.batch import BatchWorker, batch_env
from llmops_testkit.fake_retriever import FakeRetriever
from llmops_testkit.gateway import variant

MAX_FILE_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def rds(redis_url):
    """The Redis the test gateways use, to read their counters."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def batch_feedback(make_feedback, llmops_state_dir):
    """Where the gateway's request log goes: batch lines must land there marked with their batch."""
    return make_feedback(sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / f'fb-batch-{uuid.uuid4().hex[:6]}.db'}")


@pytest.fixture(scope="module")
def batch_retriever():
    """Where lines with RAG get context: which chunks does not matter here, whether it was asked does."""
    fake = FakeRetriever(["The batch context."]).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def batch_gateway(make_gateway, postgres_database_url, llmops_state_dir, batch_feedback, batch_retriever):
    env = batch_env(
        "",  # the workers' gateway URL is set once it listens
        GATEWAY_FILES_URL=str(llmops_state_dir / f"files-{uuid.uuid4().hex[:6]}"),
        GATEWAY_FILES_MAX_BYTES=str(MAX_FILE_BYTES),
        GATEWAY_BATCH_SHARD_LINES="10",
        GATEWAY_BATCH_LINE_CONCURRENCY="2",
        GATEWAY_BATCH_PRIORITY="10",
    )
    return make_gateway(
        sql_url=postgres_database_url, **env, **batch_feedback.gateway_env(), **batch_retriever.gateway_env()
    )


@pytest.fixture
def make_worker(batch_gateway):
    """Batch workers of one test, stopped at its end (shards of other tests' batches are not theirs to run)."""
    started: list[BatchWorker] = []

    def make(**overrides: str) -> BatchWorker:
        env = {**batch_gateway.env, "GATEWAY_BATCH_GATEWAY_URL": batch_gateway.url, **overrides}
        worker = BatchWorker(env=env, state_dir=batch_gateway.state_dir, name=f"batch-{len(started)}")
        started.append(worker)
        return worker.start()

    yield make
    for worker in started:
        worker.stop()


@pytest.fixture
def route(batch_gateway, upstreams):
    return batch_gateway.put_route(variants=[variant("a", upstreams["alpha"])])
