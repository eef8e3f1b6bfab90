"""The Alembic migrations build exactly the schema the models describe, go down and up again, and replicas may start
together on a fresh database."""

import asyncio
from importlib.resources import files

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from llmops_common.sql import alembic_config
from llmops_feedback.db import Base, migrate
from llmops_feedback.evaluation import models as _evaluation  # noqa: F401
from llmops_feedback.experiments import models as _experiments  # noqa: F401  (tables onto Base.metadata)
from llmops_feedback.ratings import models as _ratings  # noqa: F401
from llmops_feedback.records import models as _records  # noqa: F401
from llmops_feedback.retraining import models as _retraining  # noqa: F401
from llmops_testkit.feedback import Feedback, feedback_env, new_tokens

VERSION_TABLE = "alembic_version_feedback"


def _diff(sync) -> list:
    context = MigrationContext.configure(sync, opts={"version_table": VERSION_TABLE})
    return compare_metadata(context, Base.metadata)


def _downgrade_to_base(sync) -> None:
    config = alembic_config(str(files("llmops_feedback") / "migrations"), version_table=VERSION_TABLE, connection=sync)
    command.downgrade(config, "base")


async def _migrate_diff_down_and_up(url: str) -> dict:
    engine = create_async_engine(url)
    try:
        await migrate(engine)
        await migrate(engine)  # a second run is a no-op
        async with engine.connect() as conn:
            first = await conn.run_sync(_diff)
            tables = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade_to_base)
        async with engine.connect() as conn:
            after_downgrade = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
        await migrate(engine)
        async with engine.connect() as conn:
            again = await conn.run_sync(_diff)
        return {"first": first, "tables": tables, "after_downgrade": after_downgrade, "again": again}
    finally:
        await engine.dispose()


def test_migrations_match_the_models_and_go_down_and_up(new_database):
    result = asyncio.run(_migrate_diff_down_and_up(new_database()))
    assert result["first"] == []
    assert result["tables"] == {
        "request_log",
        "ratings",
        "experiments",
        "experiment_decisions",
        "leases",
        "retraining_policies",
        "pending_ratings",
        "eval_scores",
        "eval_sets",
        "eval_comparisons",
        VERSION_TABLE,
    }
    assert result["after_downgrade"] <= {VERSION_TABLE}
    assert result["again"] == []


def test_replicas_starting_at_once_on_a_fresh_database(llmops_state_dir, new_database, make_record):
    url = new_database()
    admin_token, ingest_token = new_tokens()
    env = feedback_env(sql_url=url, admin_token=admin_token, ingest_token=ingest_token)
    replicas = [Feedback(env=env, state_dir=llmops_state_dir / f"fb-replicas-{i}") for i in range(3)]
    for replica in replicas:  # launch all three before waiting for any
        replica.process.launch()
    try:
        for replica in replicas:
            replica.process.wait()
        record = make_record()
        with replicas[0].ingest() as ingester, replicas[2].admin() as admin:
            assert ingester.post("/v1/requests", json={"records": [record]}).json()["inserted"] == 1
            assert admin.get(f"/v1/requests/{record['request_id']}").status_code == 200
    finally:
        for replica in replicas:
            replica.stop()
