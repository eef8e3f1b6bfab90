"""A PostgreSQL that answers nothing (a network partition: ``postgres_proxy.blackhole()``) is an outage once the
engine's timeouts run out, as ``make_engine`` promises: a connect or a statement past its bound is an
``OperationalError`` that ``database_outage`` recognises, the connection that waited is never used again, and the
engine serves again once the server answers. The services' own tests (``test_postgres_blackhole.py``) show the 503s."""

import asyncio
import logging

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from llmops_common import sql
from llmops_common.errors import database_outage
from llmops_common.settings import DatabaseTimeouts

FAST = DatabaseTimeouts(connect_s=1, statement_s=1)


async def _select(engine, value: int = 1) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(text(f"SELECT {value}"))).scalar()


@pytest.fixture
def engine(proxied_postgres_url):
    engine = sql.make_engine(proxied_postgres_url, FAST)
    yield engine
    asyncio.run(engine.dispose())


def test_a_statement_without_an_answer_is_an_outage_and_its_connection_is_dropped(engine, postgres_proxy):
    async def run() -> sa_exc.OperationalError:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            postgres_proxy.blackhole()
            with pytest.raises(sa_exc.OperationalError) as raised:
                await conn.execute(text("SELECT 2"))
        postgres_proxy.restore()
        assert await _select(engine, 3) == 3  # another connection: the one that waited is gone
        return raised.value

    error = asyncio.run(run())
    assert isinstance(error.orig, TimeoutError) and error.connection_invalidated and database_outage(error)


def test_a_connect_without_an_answer_is_an_outage(engine, postgres_proxy):
    async def run() -> sa_exc.OperationalError:
        with postgres_proxy.blackholed_for(), pytest.raises(sa_exc.OperationalError) as raised:
            await _select(engine)
        assert await _select(engine, 2) == 2
        return raised.value

    assert database_outage(asyncio.run(run()))


def test_pooled_connections_gone_silent_are_replaced_without_an_error(engine, postgres_proxy, caplog):
    async def run() -> int:
        await asyncio.gather(*(_select(engine) for _ in range(3)))  # a few pooled connections
        postgres_proxy.freeze_established()
        return await _select(engine, 4)

    with caplog.at_level(logging.WARNING, logger="llmops_common.sql"):
        assert asyncio.run(run()) == 4
    assert "failed its ping" in caplog.text


def test_a_request_session_that_cannot_close_is_logged_not_raised(engine, postgres_proxy, caplog):
    sessions = sql.make_sessionmaker(engine)

    async def run() -> None:
        async with sql.request_session(sessions) as session:
            await session.execute(text("SELECT 1"))  # a transaction open: closing it sends a rollback
            postgres_proxy.freeze_established()

    with caplog.at_level(logging.WARNING, logger="llmops_common.sql"):
        asyncio.run(run())
    assert "session not closed: database unavailable" in caplog.text
