"""Route revisions: every change of a route, with who made it, when and what changed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

import llmops_common.sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    revisions = op.create_table(
        "route_revisions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("route", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", llmops_common.sql.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("route", "revision", name="uq_route_revisions_route_revision"),
    )
    op.create_index("ix_route_revisions_route", "route_revisions", ["route"])
    # Routes that exist already start their history here, as revision 1 by "migration": a revert to the state
    # before the first change made after the upgrade is then possible.
    routes = sa.table(
        "routes",
        sa.column("name", sa.String()),
        sa.column("spec", sa.JSON()),
        sa.column("updated_at", llmops_common.sql.UTCDateTime()),
    )
    rows = op.get_bind().execute(sa.select(routes.c.name, routes.c.spec, routes.c.updated_at)).all()
    if rows:
        op.bulk_insert(
            revisions,
            [
                {
                    "route": name,
                    "revision": 1,
                    "action": "create",
                    "spec": spec,
                    "changes": ["existing route, recorded by the upgrade"],
                    "actor": "migration",
                    "at": updated_at,
                }
                for name, spec, updated_at in rows
            ],
        )


def downgrade() -> None:
    op.drop_index("ix_route_revisions_route", table_name="route_revisions")
    op.drop_table("route_revisions")
