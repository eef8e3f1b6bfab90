"""The Alembic migrations build exactly the schema the models describe, keep the data they change, and replicas may
start together."""

import asyncio
import uuid
from datetime import UTC, datetime
from importlib.resources import files

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from llmops_common.sql import UTCDateTime, alembic_config
from llmops_gateway.db import Base, migrate
from llmops_testkit.gateway import Gateway, gateway_env, new_secrets


async def _migrate_and_diff(url: str) -> list:
    engine = create_async_engine(url)
    try:
        await migrate(engine)
        await migrate(engine)  # a second run is a no-op
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"version_table": "alembic_version_gateway"}), Base.metadata
                )
            )
    finally:
        await engine.dispose()


def test_migrations_match_the_models(sql_url):
    assert asyncio.run(_migrate_and_diff(sql_url)) == []


def test_replicas_starting_at_once_on_a_fresh_database(llmops_state_dir, redis_url, empty_sql_url):
    """Each replica migrates an empty database at once (the session's shared one is migrated long before)."""
    state_dir = llmops_state_dir / f"fresh-{uuid.uuid4().hex[:6]}"
    admin_token, key_secret = new_secrets()
    env = gateway_env(
        sql_url=empty_sql_url, redis_url=redis_url, state_dir=state_dir, admin_token=admin_token, key_secret=key_secret
    )
    gateway = Gateway(env=env, state_dir=state_dir, replicas=3)
    for replica in gateway.replicas:  # launch all three before waiting for any
        replica.launch()
    try:
        for replica in gateway.replicas:
            replica.wait()
        assert gateway.create_key(replica=2)[1].startswith("sk-llmops-")
    finally:
        gateway.stop()


_SPEND_KEY = ("key_id", "team", "route", "variant", "price_id")
_SPEND_SUMS = ("requests", "prompt_tokens", "cached_tokens", "completion_tokens", "cost_nanos")


def _alembic(sync, action: str, revision: str) -> None:
    config = alembic_config(
        str(files("llmops_gateway") / "migrations"), version_table="alembic_version_gateway", connection=sync
    )
    getattr(command, action)(config, revision)


def _spend_table(*extra: str) -> sa.TableClause:
    columns = (*_SPEND_KEY[:-1], *extra, "price_id", *_SPEND_SUMS)
    return sa.table("spend", sa.column("hour", UTCDateTime()), *(sa.column(name) for name in columns))


def _spend_row(**fields) -> dict:
    hour = datetime(2027, 1, 15, 8, tzinfo=UTC)
    return {"hour": hour, "key_id": "k", "team": "", "route": "r", "variant": "v", "price_id": 0, **fields}


async def _spend_through_0005(url: str) -> dict:
    engine = create_async_engine(url)
    old, new = _spend_table(), _spend_table("prompt_version")
    sums = {name: 1 for name in _SPEND_SUMS}
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_alembic, "upgrade", "0004")
            await conn.execute(sa.insert(old), [_spend_row(**sums)])
        await migrate(engine)
        async with engine.begin() as conn:
            upgraded = (await conn.execute(sa.select(new.c.prompt_version, new.c.requests))).all()
            await conn.execute(sa.insert(new), [_spend_row(prompt_version="p/2", **sums)])  # a row of its own
        async with engine.begin() as conn:
            await conn.run_sync(_alembic, "downgrade", "0004")
        async with engine.connect() as conn:
            downgraded = (await conn.execute(sa.select(old.c.key_id, *(old.c[n] for n in _SPEND_SUMS)))).all()
        return {"upgraded": [tuple(r) for r in upgraded], "downgraded": [tuple(r) for r in downgraded]}
    finally:
        await engine.dispose()


def test_spend_rows_gain_a_prompt_version_and_are_summed_without_it(empty_sql_url):
    result = asyncio.run(_spend_through_0005(empty_sql_url))
    assert result["upgraded"] == [("", 1)]  # spent before the upgrade: no prompt version recorded
    assert result["downgraded"] == [("k", 2, 2, 2, 2, 2)]  # the two prompt versions' rows, summed into one
