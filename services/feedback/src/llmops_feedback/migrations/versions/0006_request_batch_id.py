"""the batch a request was a line of (OpenAI Batches API at the gateway)

Batch answers are rated and trained on like online ones; the column tells them apart (and finds a batch's lines).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 00:05:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_request_log_batch_id", ["batch_id"])


def downgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.drop_index("ix_request_log_batch_id")
        batch_op.drop_column("batch_id")
