"""The Alembic migrations build exactly the schema the models describe, go down and up again, and replicas may start
together on a fresh database."""

import asyncio
from datetime import UTC, datetime
from importlib.resources import files

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import JSON, column, inspect, select, table
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


async def _policies_through_0009(url: str, experiments: dict[str, dict]) -> dict[str, dict]:
    """Policies stored under 0008 (each route's ``experiment`` as given), then migrated to the head."""
    engine = create_async_engine(url)
    config = alembic_config(str(files("llmops_feedback") / "migrations"), version_table=VERSION_TABLE)
    policies = table(
        "retraining_policies", *(column(name) for name in ROW_0008), column("experiment", JSON), column("job", JSON)
    )
    try:
        async with engine.begin() as conn:

            def to_0008(sync) -> None:
                config.attributes["connection"] = sync
                command.upgrade(config, "0008")

            await conn.run_sync(to_0008)
            await conn.execute(
                policies.insert(), [ROW_0008 | {"route": r, "experiment": e, "job": {}} for r, e in experiments.items()]
            )
        await migrate(engine)
        async with engine.connect() as conn:
            rows = await conn.execute(select(policies.c.route, policies.c.experiment))
            return {route: experiment for route, experiment in rows}
    finally:
        await engine.dispose()


ROW_0008 = {"route": None, "model_name": "m", "champion": "base", "challenger": "challenger", "min_examples": 10,
            "cooldown_s": 0.0, "max_failures": 3, "enabled": True, "dataset_examples": 0, "failures": 0,
            "updated_at": datetime(2026, 12, 1, tzinfo=UTC)}  # fmt: skip


def test_0009_names_the_rubric_a_stored_judge_guardrail_meant(new_database):
    """Before 0009 a guardrail without ``judge_rubric`` read ``helpfulness``; the migration writes that into the
    policies that relied on it, and leaves every other policy as it was."""
    stored = {
        "guarded": {"steps": [0.1], "min_judge_score": 0.6},
        "named": {"min_judge_score": 0.6, "judge_rubric": "correctness"},
        "unguarded": {"steps": [0.1, 0.5]},
        "explicit-null": {"min_judge_score": None},
    }
    migrated = asyncio.run(_policies_through_0009(new_database(), stored))
    assert migrated["guarded"] == {"steps": [0.1], "min_judge_score": 0.6, "judge_rubric": "helpfulness"}
    assert {route: migrated[route] for route in ("named", "unguarded", "explicit-null")} == {
        route: stored[route] for route in ("named", "unguarded", "explicit-null")
    }
