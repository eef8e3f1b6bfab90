"""SQL plumbing for services with a store: SQLite by default, PostgreSQL by URL, Alembic migrations at start-up.

Each service keeps its own declarative ``Base``, models and migrations; this module only opens
engines and runs migrations safely when several replicas start at once.
"""

import fcntl
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, DateTime, TypeDecorator, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from llmops_common.errors import database_outage
from llmops_common.settings import DEFAULT_DATABASE_TIMEOUTS, DatabaseTimeouts

logger = logging.getLogger(__name__)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def dialect_insert(session: AsyncSession):
    """The dialect's ``insert`` (PostgreSQL's or SQLite's), which has ``on_conflict_do_nothing``/``_do_update``."""
    return {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[session.bind.dialect.name]


# Rows per INSERT when many go as one statement's parameters (SQLAlchemy's "insertmanyvalues"): every row count up
# to this is a statement of its own, which each connection keeps prepared (sqlite3 caches 128, asyncpg 100), and a
# prepared multi-row INSERT of hundreds of rows is large. Measured on the feedback service's ingest (300,000 records
# in batches of 1 to 500): at SQLAlchemy's default of 1000 its RSS grew 106 MB on SQLite and 42 MB on PostgreSQL;
# at 50, 10 and 6 MB, and ingest was no slower (16% and 26% faster in one run each).
INSERT_PAGE_ROWS = 50


def make_engine(database_url: str | URL, timeouts: DatabaseTimeouts = DEFAULT_DATABASE_TIMEOUTS, **pool) -> AsyncEngine:
    """An engine on SQLite or PostgreSQL. On PostgreSQL nothing waits on the server longer than ``timeouts`` say:
    a server behind a network partition answers nothing, not even an error, and without a bound a request (or a
    worker's loop) would wait for it until TCP gives up, many minutes later. What times out is an
    ``OperationalError``, which the error handlers answer with 503 ``database_unavailable``. ``hide_parameters``:
    a database error's message names its statement but not the values bound to it, which are key and token
    hashes, prompts and answers; the services log those errors (an outage, a failed refresh)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        return create_async_engine(
            url, connect_args={"timeout": 30}, hide_parameters=True, insertmanyvalues_page_size=INSERT_PAGE_ROWS
        )
    pool = pool or {"pool_size": 10, "max_overflow": 20, "pool_timeout": timeouts.connect_s}
    engine = create_async_engine(
        url,
        # asyncpg's own bounds: on connecting (TCP, TLS, authentication) and on every statement's answer, each
        # fetch of a streamed result included. A statement past its bound is cancelled on the server as well.
        connect_args={"timeout": timeouts.connect_s, "command_timeout": timeouts.statement_s},
        hide_parameters=True,
        insertmanyvalues_page_size=INSERT_PAGE_ROWS,
        **pool,
    )
    _bound_by(engine, timeouts)
    return engine


def _bound_by(engine: AsyncEngine, timeouts: DatabaseTimeouts) -> None:
    # asyncpg reports its timeouts as the builtin TimeoutError and a failed connect as an OSError, which SQLAlchemy
    # passes on unwrapped (and its pre-ping lets through): each is made an OperationalError here, so that every
    # caller that handles a database error (views, flush loops, workers) handles these too.
    @event.listens_for(engine.sync_engine, "do_connect")
    def connect(dialect, _record, cargs, cparams):
        try:
            return dialect.connect(*cargs, **cparams)
        except OSError as exc:  # timed out, refused, or a name that does not resolve: the server is not there
            raise dialect.loaded_dbapi.OperationalError(f"cannot connect: {exc!r}") from exc

    @event.listens_for(engine.sync_engine, "handle_error")
    def statement_timed_out(context):
        if not isinstance(context.original_exception, TimeoutError):
            return None
        # Its answer may still come: the connection is never used again. Only this one: a slow statement says
        # nothing about the others (a dead server is found by the ping below, and the whole pool dropped then).
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False
        error = sa_exc.OperationalError(context.statement, None, context.original_exception, hide_parameters=True)
        error.connection_invalidated = True
        return error

    # Instead of ``pool_pre_ping``: the same check on each checkout of a pooled connection, but bounded by the
    # connect timeout (a dead server is not given a statement's time to say so) and reported as a disconnection
    # whatever went wrong, which makes the pool drop every connection it holds and connect afresh.
    @event.listens_for(engine.sync_engine.pool, "checkout")
    def ping(dbapi_connection, _record, _proxy):
        try:
            # execute, not fetch: the simple query protocol, no prepared statement (works behind pgbouncer).
            dbapi_connection.run_async(lambda conn: conn.execute("SELECT 1", timeout=timeouts.connect_s))
        except Exception as exc:
            logger.warning("pooled database connection failed its ping; connecting afresh", extra={"error": repr(exc)})
            raise sa_exc.InvalidatePoolError(f"pooled connection failed its ping: {exc!r}") from exc

    # A connection given up on (timed out, failed its ping) is cut at once: SQLAlchemy's polite close would wait
    # two more seconds for a goodbye from a server that may not be there.
    @event.listens_for(engine.sync_engine.pool, "invalidate")
    def cut(dbapi_connection, _record, _exception):
        dbapi_connection.driver_connection.terminate()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def request_session(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A request's session (the services' ``SessionDep``). FastAPI closes it once the answer is on its way: a
    database gone by then (the rollback of what the request read finds no server) is logged, not raised, which
    would cut the client's connection off under an answer already given."""
    session = sessions()
    try:
        yield session
    finally:
        try:
            await session.close()
        except Exception as exc:
            if not database_outage(exc):
                raise
            logger.warning("session not closed: database unavailable", extra={"error": repr(exc)[:300]})


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def alembic_config(script_location: str, *, version_table: str, connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", script_location)
    # A version table per service: services may share one PostgreSQL database.
    config.attributes["version_table"] = version_table
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def upgrade_to_head(
    engine: AsyncEngine,
    *,
    script_location: str,
    version_table: str,
    lock_id: int,
    timeouts: DatabaseTimeouts = DEFAULT_DATABASE_TIMEOUTS,
) -> None:
    """Bring the schema to the newest revision. Replicas take turns; the later ones find it current."""

    def upgrade(connection) -> None:
        command.upgrade(alembic_config(script_location, version_table=version_table, connection=connection), "head")

    if engine.dialect.name == "postgresql":
        # A connection of its own, with the migrations' bound on each statement: a migration (or another replica's,
        # waited for on the lock) may take longer than any request's statement should.
        migrating = make_engine(engine.url, replace(timeouts, statement_s=timeouts.migration_s), poolclass=NullPool)
        try:
            async with migrating.connect() as conn:
                await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
                try:
                    await conn.run_sync(upgrade)
                    await conn.commit()
                finally:
                    await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
        finally:
            await migrating.dispose()
        return
    database = engine.url.database
    on_disk = engine.dialect.name == "sqlite" and database and database != ":memory:"
    # Replicas on one machine share the SQLite file: a lock file beside it serialises them. Blocking
    # the loop while waiting is fine: this runs in the lifespan, before any request is served.
    with _file_lock(Path(f"{database}.migrate.lock")) if on_disk else _no_lock():
        async with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                # WAL lets several processes read while one writes.
                await conn.execute(text("PRAGMA journal_mode=WAL"))
            await conn.run_sync(upgrade)


@contextmanager
def _no_lock():
    yield


def run_alembic_env(metadata, *, version_table: str) -> None:
    """The body of every service's ``migrations/env.py``: migrate on the connection the service hands over
    at start-up, or (``alembic -x url=... revision --autogenerate``) on a synchronous engine from that URL."""
    from alembic import context
    from sqlalchemy import create_engine

    config = context.config

    def run(connection) -> None:
        # Batch mode lets ALTERs work on SQLite (it rebuilds the table).
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=True,
            version_table=config.attributes.get("version_table", version_table),
        )
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    url = context.get_x_argument(as_dictionary=True)["url"].replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")
    with create_engine(url).connect() as conn:
        run(conn)
