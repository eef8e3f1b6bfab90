"""Alembic environment: run by the service at start-up (``llmops_feedback.db.migrate``), or by
``alembic -x url=sqlite:///... revision --autogenerate`` from this directory."""

from llmops_common.sql import run_alembic_env
from llmops_feedback.db import Base
from llmops_feedback.evaluation import models as _evaluation  # noqa: F401
from llmops_feedback.experiments import models as _experiments  # noqa: F401  (tables onto Base.metadata)
from llmops_feedback.ratings import models as _ratings  # noqa: F401
from llmops_feedback.records import models as _records  # noqa: F401
from llmops_feedback.retraining import models as _retraining  # noqa: F401

run_alembic_env(Base.metadata, version_table="alembic_version_feedback")
