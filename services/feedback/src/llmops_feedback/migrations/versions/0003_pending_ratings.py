"""pending ratings, and an idempotency key per rating

A key's rating may now arrive before its request's record: it waits in ``pending_ratings``. Every rating carries an
idempotency key, unique per rater, so a redelivered rating is stored once.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import llmops_common.sql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=128), nullable=True))
        batch_op.create_index("ux_ratings_rater_idempotency", ["rated_by", "idempotency_key"], unique=True)

    op.create_table(
        "pending_ratings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("rating", sa.String(length=8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("correction", sa.Text(), nullable=True),
        sa.Column("rated_at", llmops_common.sql.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", llmops_common.sql.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pending_ratings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pending_ratings_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pending_ratings_received_at"), ["received_at"], unique=False)
        batch_op.create_index("ux_pending_ratings_key_idempotency", ["key_id", "idempotency_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("pending_ratings", schema=None) as batch_op:
        batch_op.drop_index("ux_pending_ratings_key_idempotency")
        batch_op.drop_index(batch_op.f("ix_pending_ratings_received_at"))
        batch_op.drop_index(batch_op.f("ix_pending_ratings_request_id"))

    op.drop_table("pending_ratings")
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.drop_index("ux_ratings_rater_idempotency")
        batch_op.drop_column("idempotency_key")
