"""Per-key RAG collection grants: the collections a key may retrieve from, within each route's own policy.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for every existing key: any collection its routes allow, as before the grant existed.
    op.add_column("api_keys", sa.Column("allowed_collections", sa.JSON(), nullable=True))


def downgrade() -> None:
    # batch mode: SQLite drops a column by copying the table.
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("allowed_collections")
