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

import pytest

# Overrides the fixture's own params; pytest reuses the session's PostgreSQL instances (same param value), so this
# starts nothing new.
postgres_only = pytest.mark.parametrize("sql_url", ["postgres"], indirect=True)
