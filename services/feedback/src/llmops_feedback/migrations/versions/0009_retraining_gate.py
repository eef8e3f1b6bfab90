"""the offline gate in the retraining loop: a policy's gate settings, the adapter a succeeded job served, and the
last gate's comparison, verdict and MLflow run

An experiment policy now names the rubric a judge guardrail reads (it was ``helpfulness`` when left out): stored
retraining policies that set ``min_judge_score`` without ``judge_rubric`` get the rubric they meant.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 20:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("gate", sa.JSON()),
    ("served_model", sa.String(length=256)),
    ("registered_version", sa.String(length=64)),
    ("gate_job_id", sa.String(length=64)),
    ("gate_comparison_id", sa.String(length=32)),
    ("gate_verdict", sa.String(length=16)),
    ("gate_run_id", sa.String(length=64)),
    ("gate_reason", sa.Text()),
)


def upgrade() -> None:
    with op.batch_alter_table("retraining_policies", schema=None) as batch_op:
        for name, kind in _COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))
    policies = sa.table("retraining_policies", sa.column("route", sa.String), sa.column("experiment", sa.JSON))
    connection = op.get_bind()
    for route, experiment in connection.execute(sa.select(policies.c.route, policies.c.experiment)).all():
        guarded = isinstance(experiment, dict) and experiment.get("min_judge_score") is not None
        if guarded and experiment.get("judge_rubric") is None:
            named = {**experiment, "judge_rubric": "helpfulness"}
            connection.execute(policies.update().where(policies.c.route == route).values(experiment=named))


def downgrade() -> None:
    with op.batch_alter_table("retraining_policies", schema=None) as batch_op:
        for name, _ in reversed(_COLUMNS):
            batch_op.drop_column(name)
