"""Which database errors are an outage (503 ``database_unavailable``) and which a bug (500): the asyncpg dialect
reports a server shutting down or starting up as a plain ``DBAPIError``, told apart only by its SQLSTATE. And what
those errors say when logged: never the values bound to their statement."""

import asyncio
import secrets

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from llmops_common.errors import database_outage
from llmops_common.sql import make_engine


def _wrapped(error: Exception, kind=sa_exc.DBAPIError) -> sa_exc.DBAPIError:
    return kind(statement="SELECT 1", params=None, orig=error)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),  # 57P03
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),  # 57P01
        asyncpg.exceptions.CrashShutdownError("crash shutdown"),  # 57P02
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),  # 53300
        asyncpg.exceptions.ConnectionFailureError("connection failure"),  # 08006
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_server_going_away_or_not_yet_back_is_an_outage(error):
    assert database_outage(_wrapped(error))


def test_a_refused_connection_and_an_exhausted_pool_are_outages():
    assert database_outage(ConnectionRefusedError(111, "Connect call failed"))
    assert database_outage(sa_exc.TimeoutError("QueuePool limit reached"))
    assert database_outage(_wrapped(OSError("closed"), sa_exc.OperationalError))


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.UniqueViolationError("duplicate key"),  # 23505
        asyncpg.exceptions.UndefinedTableError("relation does not exist"),  # 42P01
        asyncpg.exceptions.DataError("invalid input"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_bad_statement_is_not_an_outage(error):
    assert not database_outage(_wrapped(error))


def test_a_database_error_never_carries_the_values_bound_to_its_statement(tmp_path):
    """Services log database errors (an outage, a failed key refresh): their messages name the statement, never the
    values bound to it (key and token hashes, prompts)."""
    secret = secrets.token_hex(32)

    async def fail() -> sa_exc.DBAPIError:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'errors.db'}")
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT * FROM api_keys WHERE key_hash = :key_hash"), {"key_hash": secret})
        except sa_exc.DBAPIError as exc:
            return exc
        finally:
            await engine.dispose()
        raise AssertionError("the statement did not fail")

    error = asyncio.run(fail())
    assert "api_keys" in str(error) and secret not in str(error) and secret not in repr(error)
