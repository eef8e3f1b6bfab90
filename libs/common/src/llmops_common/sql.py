"""SQL plumbing for services with a store: SQLite by default, PostgreSQL by URL, Alembic migrations at start-up.

Each service keeps its own declarative ``Base``, models and migrations; this module only opens
engines and runs migrations safely when several replicas start at once.
"""

import fcntl
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, TypeDecorator, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


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


def make_engine(database_url: str) -> AsyncEngine:
    # hide_parameters: a database error's message names its statement but not the values bound to it, which are key
    # and token hashes, prompts and answers; the services log those errors (an outage, a failed refresh).
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        return create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, hide_parameters=True)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


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


async def upgrade_to_head(engine: AsyncEngine, *, script_location: str, version_table: str, lock_id: int) -> None:
    """Bring the schema to the newest revision. Replicas take turns; the later ones find it current."""

    def upgrade(connection) -> None:
        command.upgrade(alembic_config(script_location, version_table=version_table, connection=connection), "head")

    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id})
            try:
                await conn.run_sync(upgrade)
                await conn.commit()
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
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
