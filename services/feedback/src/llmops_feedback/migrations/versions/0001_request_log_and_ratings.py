"""request log and ratings

Revision ID: 0001
Revises:
Create Date: 2026-11-24 23:39:28.670000
"""

import sqlalchemy as sa
from alembic import op

import llmops_common.sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_log",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=True),
        sa.Column("route", sa.String(length=128), nullable=False),
        sa.Column("variant", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.JSON(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("redacted", sa.Boolean(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("retrieved_ids", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", llmops_common.sql.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", llmops_common.sql.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", llmops_common.sql.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_request_log_key_id"), ["key_id"], unique=False)
        batch_op.create_index("ix_request_log_route_variant_started", ["route", "variant", "started_at"], unique=False)
        batch_op.create_index("ix_request_log_started", ["started_at"], unique=False)

    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("rating", sa.String(length=8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("correction", sa.Text(), nullable=True),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("rated_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", llmops_common.sql.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["request_log.request_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.create_index("ix_ratings_request_current", ["request_id", "current"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.drop_index("ix_ratings_request_current")

    op.drop_table("ratings")
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.drop_index("ix_request_log_started")
        batch_op.drop_index("ix_request_log_route_variant_started")
        batch_op.drop_index(batch_op.f("ix_request_log_key_id"))

    op.drop_table("request_log")
