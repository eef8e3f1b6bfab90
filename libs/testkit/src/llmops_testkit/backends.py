"""Which SQL backends a test runs on.

``sql_url`` (and every service fixture built on it) runs a test once on SQLite and once on PostgreSQL. That is right
for a test whose subject is the store: its queries, transactions, locks, migrations. A test whose subject is
elsewhere (an end-to-end scenario, a fault in another part, a model on vLLM) gains nothing from a second run but
time, so it runs on PostgreSQL, the production backend, only: ``pytestmark = postgres_only``. SQLite, what
``llmops up`` runs on, stays covered end to end by the demo test and by every store test.

As a module's ``pytestmark`` it needs every test of the module to use ``sql_url`` (directly or through a fixture):
pytest refuses to collect a test that is parametrized on a fixture it does not use. In a module where some tests do
not, mark the tests one by one (``@postgres_only``).
"""

import uuid

import asyncpg
import pytest

# Overrides the fixture's own params; pytest reuses the session's PostgreSQL instances (same param value), so this
# starts nothing new.
postgres_only = pytest.mark.parametrize("sql_url", ["postgres"], indirect=True)


async def create_database(server_url: str, prefix: str = "llmops_test") -> str:
    """A fresh database on the PostgreSQL server at ``server_url`` (``postgresql://...``); its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
