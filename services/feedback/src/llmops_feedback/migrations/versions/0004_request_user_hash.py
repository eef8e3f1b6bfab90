"""the assignment unit of each request (a pseudonymous user id)

Sticky routing keeps a user on one variant, so an experiment's sample-ratio check counts users, not requests: a
heavy user would otherwise look like a broken split.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 23:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_hash", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.drop_column("user_hash")
