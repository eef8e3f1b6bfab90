"""Spend by prompt version (a column of the hourly rows and of their unique key), and how a self-hosted price was
derived (its GPU-hour cost and throughput).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

import llmops_common.sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_OLD_KEY = ("hour", "key_id", "team", "route", "variant", "price_id")
_SUMS = ("requests", "prompt_tokens", "cached_tokens", "completion_tokens", "cost_nanos")


def upgrade() -> None:
    # batch mode: SQLite cannot change a unique constraint in place. Rows spent before the upgrade had no prompt
    # version recorded: "" (shown as "-"), like a request without a prompt.
    with op.batch_alter_table("spend") as batch:
        batch.add_column(sa.Column("prompt_version", sa.String(192), nullable=False, server_default=""))
        batch.drop_constraint("uq_spend", type_="unique")
        batch.create_unique_constraint("uq_spend", [*_OLD_KEY[:5], "prompt_version", "price_id"])
    with op.batch_alter_table("prices") as batch:
        batch.add_column(sa.Column("derived_from", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prices") as batch:
        batch.drop_column("derived_from")
    # Rows that differ only in their prompt version are summed into one, as the old unique key requires.
    spend = sa.table(
        "spend",
        sa.column("hour", llmops_common.sql.UTCDateTime()),
        *(sa.column(name) for name in _OLD_KEY[1:]),
        *(sa.column(name, sa.BigInteger()) for name in _SUMS),
    )
    keys = [spend.c[name] for name in _OLD_KEY]
    summed = (
        op.get_bind().execute(sa.select(*keys, *(sa.func.sum(spend.c[name]) for name in _SUMS)).group_by(*keys)).all()
    )
    op.execute(spend.delete())
    with op.batch_alter_table("spend") as batch:
        batch.drop_constraint("uq_spend", type_="unique")
        batch.drop_column("prompt_version")
        batch.create_unique_constraint("uq_spend", list(_OLD_KEY))
    if summed:
        rows = [(*row[: len(_OLD_KEY)], *(int(total) for total in row[len(_OLD_KEY) :])) for row in summed]
        op.bulk_insert(spend, [dict(zip((*_OLD_KEY, *_SUMS), row, strict=True)) for row in rows])
