"""experiments, retraining and model versions

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05 19:34:55.413163
"""

import sqlalchemy as sa
from alembic import op

import llmops_common.sql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("route", sa.String(length=128), nullable=False),
        sa.Column("open_route", sa.String(length=128), nullable=True),
        sa.Column("champion", sa.String(length=128), nullable=False),
        sa.Column("challenger", sa.String(length=128), nullable=False),
        sa.Column("champion_model", sa.String(length=256), nullable=True),
        sa.Column("challenger_model", sa.String(length=256), nullable=True),
        sa.Column("champion_version", sa.String(length=64), nullable=True),
        sa.Column("challenger_version", sa.String(length=64), nullable=True),
        sa.Column("previous_champion_version", sa.String(length=64), nullable=True),
        sa.Column("previous_champion", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", llmops_common.sql.UTCDateTime(timezone=True), nullable=False),
        sa.Column("step_started_at", llmops_common.sql.UTCDateTime(timezone=True), nullable=False),
        sa.Column("concluded_at", llmops_common.sql.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_route"),
    )
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_experiments_route"), ["route"], unique=False)

    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", llmops_common.sql.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "retraining_policies",
        sa.Column("route", sa.String(length=128), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("champion", sa.String(length=128), nullable=False),
        sa.Column("challenger", sa.String(length=128), nullable=False),
        sa.Column("upstream", sa.String(length=512), nullable=True),
        sa.Column("min_examples", sa.Integer(), nullable=False),
        sa.Column("cooldown_s", sa.Float(), nullable=False),
        sa.Column("max_failures", sa.Integer(), nullable=False),
        sa.Column("job", sa.JSON(), nullable=False),
        sa.Column("experiment", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("job_state", sa.String(length=16), nullable=True),
        sa.Column("dataset_hash", sa.String(length=64), nullable=True),
        sa.Column("dataset_examples", sa.Integer(), nullable=False),
        sa.Column("started_at", llmops_common.sql.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("updated_at", llmops_common.sql.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("route"),
    )
    op.create_table(
        "experiment_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("experiment_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("apply_error", sa.Text(), nullable=True),
        sa.Column("created_at", llmops_common.sql.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("experiment_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_experiment_decisions_experiment", ["experiment_id", "id"], unique=False)

    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_version", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.drop_column("model_version")

    with op.batch_alter_table("experiment_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_experiment_decisions_experiment")

    op.drop_table("experiment_decisions")
    op.drop_table("retraining_policies")
    op.drop_table("leases")
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_experiments_route"))

    op.drop_table("experiments")
