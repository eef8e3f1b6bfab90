"""the prompt a request was sent with: a registered prompt's name and version (else a built-in template's name)

Quality summaries and experiment readouts split by it: two prompt versions on one model are two arms like any other.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 02:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prompt_name", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("prompt_version", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("request_log", schema=None) as batch_op:
        batch_op.drop_column("prompt_version")
        batch_op.drop_column("prompt_name")
