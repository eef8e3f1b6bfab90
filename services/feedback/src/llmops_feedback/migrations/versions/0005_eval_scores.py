"""evaluation: scores beside the ratings, eval sets, offline comparisons

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 00:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import llmops_common.sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_scores",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("rubric", sa.String(length=64), nullable=False),
        sa.Column("rubric_version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=16), nullable=False),
        sa.Column("scorer", sa.String(length=160), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("raw_score", sa.Integer(), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", llmops_common.sql.UTCDateTime(), nullable=False),
        sa.Column("updated_at", llmops_common.sql.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["request_log.request_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_eval_scores_request_rubric_scorer",
        "eval_scores",
        ["request_id", "rubric", "rubric_version", "scorer"],
        unique=True,
    )
    op.create_index("ix_eval_scores_rubric_status", "eval_scores", ["rubric", "rubric_version", "status"])
    op.create_table(
        "eval_sets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("created_at", llmops_common.sql.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ux_eval_sets_name_version", "eval_sets", ["name", "version"], unique=True)
    op.create_table(
        "eval_comparisons",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("wins", sa.Integer(), nullable=False),
        sa.Column("ties", sa.Integer(), nullable=False),
        sa.Column("losses", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("mlflow_run_id", sa.String(length=64), nullable=True),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", llmops_common.sql.UTCDateTime(), nullable=False),
        sa.Column("updated_at", llmops_common.sql.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("eval_comparisons")
    op.drop_index("ux_eval_sets_name_version", table_name="eval_sets")
    op.drop_table("eval_sets")
    op.drop_index("ix_eval_scores_rubric_status", table_name="eval_scores")
    op.drop_index("ux_eval_scores_request_rubric_scorer", table_name="eval_scores")
    op.drop_table("eval_scores")
