"""Files and batches (the OpenAI Files and Batches API): files, batches, their shards and per-line results.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

import llmops_common.sql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, llmops_common.sql.UTCDateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("object_name", sa.String(255), nullable=False),
        _at("created_at", nullable=False),
    )
    op.create_index("ix_files_key_id", "files", ["key_id"])
    op.create_table(
        "batches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("input_file_id", sa.String(64), nullable=False),
        sa.Column("completion_window", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("estimated_tokens", sa.Integer(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=True),
        sa.Column("output_file_id", sa.String(64), nullable=True),
        sa.Column("error_file_id", sa.String(64), nullable=True),
        _at("created_at", nullable=False),
        _at("expires_at", nullable=False),
        *(_at(name) for name in ("in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at")),
        *(_at(name) for name in ("cancelling_at", "cancelled_at")),
    )
    op.create_index("ix_batches_key_id", "batches", ["key_id"])
    op.create_index("ix_batches_status", "batches", ["status"])
    op.create_table(
        "batch_shards",
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("idx", sa.Integer(), primary_key=True),
        sa.Column("first_line", sa.Integer(), nullable=False),
        sa.Column("end_line", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        _at("lease_until"),
        _at("dispatched_at"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "batch_results",
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("line", sa.Integer(), primary_key=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("output", sa.JSON(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("completion_tokens", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("batch_results")
    op.drop_table("batch_shards")
    op.drop_index("ix_batches_status", table_name="batches")
    op.drop_index("ix_batches_key_id", table_name="batches")
    op.drop_table("batches")
    op.drop_index("ix_files_key_id", table_name="files")
    op.drop_table("files")
