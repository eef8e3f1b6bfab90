"""Teams, key budgets and max_tokens caps, versioned prices, hourly spend, admin identities and the audit log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

import llmops_common.sql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.String(500), nullable=True),
        sa.Column("budget_daily_nanos", sa.BigInteger(), nullable=True),
        sa.Column("budget_monthly_nanos", sa.BigInteger(), nullable=True),
        sa.Column("created_at", llmops_common.sql.UTCDateTime(), nullable=False),
    )
    # batch mode: SQLite cannot add a foreign key to an existing table in place.
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("team", sa.String(64), nullable=True))
        batch.add_column(sa.Column("max_tokens", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("tier", sa.String(32), nullable=True))
        batch.add_column(sa.Column("budget_daily_nanos", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("budget_monthly_nanos", sa.BigInteger(), nullable=True))
        batch.create_foreign_key("fk_api_keys_team", "teams", ["team"], ["name"])
        batch.create_index("ix_api_keys_team", ["team"])
    op.create_table(
        "prices",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("input_nanos", sa.BigInteger(), nullable=False),
        sa.Column("output_nanos", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_nanos", sa.BigInteger(), nullable=True),
        sa.Column("created_at", llmops_common.sql.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_prices_variant", "prices", ["variant"])
    op.create_table(
        "spend",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("hour", llmops_common.sql.UTCDateTime(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("route", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("price_id", sa.Integer(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_nanos", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("hour", "key_id", "team", "route", "variant", "price_id", name="uq_spend"),
    )
    op.create_index("ix_spend_hour", "spend", ["hour"])
    op.create_table(
        "admin_identities",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("team", sa.String(64), sa.ForeignKey("teams.name"), nullable=True),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", llmops_common.sql.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", llmops_common.sql.UTCDateTime(), nullable=True),
    )
    op.create_index("ix_admin_identities_token_hash", "admin_identities", ["token_hash"], unique=True)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", llmops_common.sql.UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_admin_identities_token_hash", table_name="admin_identities")
    op.drop_table("admin_identities")
    op.drop_index("ix_spend_hour", table_name="spend")
    op.drop_table("spend")
    op.drop_index("ix_prices_variant", table_name="prices")
    op.drop_table("prices")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index("ix_api_keys_team")
        batch.drop_constraint("fk_api_keys_team", type_="foreignkey")
        batch.drop_column("budget_monthly_nanos")
        batch.drop_column("budget_daily_nanos")
        batch.drop_column("team")
        batch.drop_column("max_tokens")
        batch.drop_column("tier")
    op.drop_table("teams")
