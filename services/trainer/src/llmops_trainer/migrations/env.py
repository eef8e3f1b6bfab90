"""Alembic environment: run by the service at start-up (``llmops_trainer.db.migrate``), or by
``alembic -x url=sqlite:///... revision --autogenerate`` from this directory."""

from llmops_common.sql import run_alembic_env
from llmops_trainer.db import Base
from llmops_trainer.jobs import models as _jobs  # noqa: F401  (tables onto Base.metadata)

run_alembic_env(Base.metadata, version_table="alembic_version_trainer")
