"""Bringing the SQL schema to the newest Alembic revision at start-up, safely when replicas start together."""

import fcntl
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# Any constant works; it only has to be the same for every gateway replica.
_PG_LOCK_ID = 0x6C6C6D6F7073


def _upgrade(connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(files("llmops_gateway") / "migrations"))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


@contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def upgrade_to_head(engine: AsyncEngine) -> None:
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            # Replicas take turns; the second finds the schema current and does nothing.
            await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _PG_LOCK_ID})
            try:
                await conn.run_sync(_upgrade)
                await conn.commit()
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_LOCK_ID})
        return
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        # Replicas on one machine share the file: a lock file beside it serialises their migrations.
        # Blocking the loop while waiting is fine: this runs in the lifespan, before any request.
        with _file_lock(Path(f"{database}.migrate.lock")):
            await _run(engine)
        return
    await _run(engine)


async def _run(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            # WAL lets several gateway replicas on one machine read while one writes.
            await conn.execute(text("PRAGMA journal_mode=WAL"))
        await conn.run_sync(_upgrade)
