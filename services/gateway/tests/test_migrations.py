"""The Alembic migrations build exactly the schema the models describe, and replicas may start together."""

import asyncio
import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

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


def test_replicas_starting_at_once_on_a_fresh_database(llmops_state_dir, redis_url, postgres_database_url):
    for url in (f"sqlite+aiosqlite:///{llmops_state_dir / f'fresh-{uuid.uuid4().hex[:6]}.db'}", postgres_database_url):
        state_dir = llmops_state_dir / f"fresh-{uuid.uuid4().hex[:6]}"
        admin_token, key_secret = new_secrets()
        env = gateway_env(
            sql_url=url, redis_url=redis_url, state_dir=state_dir, admin_token=admin_token, key_secret=key_secret
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
