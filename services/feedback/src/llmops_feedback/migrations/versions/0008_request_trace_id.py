"""the OpenTelemetry trace id of a request (when the gateway traces)

Finds a stored request from its trace and the trace from a rated request. Indexed: the look-up goes both ways.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 02:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trace_id", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_request_log_trace_id", ["trace_id"])


def downgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.drop_index("ix_request_log_trace_id")
        batch_op.drop_column("trace_id")
