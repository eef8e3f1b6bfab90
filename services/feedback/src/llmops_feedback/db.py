"""The feedback service's SQL store: its declarative base, and its migrations run at start-up."""

from importlib.resources import files

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase

from llmops_common import sql
from llmops_common.settings import DEFAULT_DATABASE_TIMEOUTS, DatabaseTimeouts


class Base(DeclarativeBase):
    pass


_MIGRATION_LOCK_ID = 0x6C6C6D6F7066


async def migrate(engine: AsyncEngine, timeouts: DatabaseTimeouts = DEFAULT_DATABASE_TIMEOUTS) -> None:
    await sql.upgrade_to_head(
        engine,
        script_location=str(files("llmops_feedback") / "migrations"),
        version_table="alembic_version_feedback",
        lock_id=_MIGRATION_LOCK_ID,
        timeouts=timeouts,
    )
