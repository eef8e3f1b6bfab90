"""Alembic environment: run by the service at start-up (``llmops_gateway.db.migrate``), or by
``alembic -x url=sqlite:///... revision --autogenerate`` from this directory."""

from llmops_common.sql import run_alembic_env
from llmops_gateway.admin import models as _admin  # noqa: F401
from llmops_gateway.batches import models as _batches  # noqa: F401
from llmops_gateway.db import Base
from llmops_gateway.files import models as _files  # noqa: F401
from llmops_gateway.keys import models as _keys  # noqa: F401  (tables onto Base.metadata)
from llmops_gateway.routing import models as _routing  # noqa: F401
from llmops_gateway.spend import models as _spend  # noqa: F401
from llmops_gateway.teams import models as _teams  # noqa: F401

run_alembic_env(Base.metadata, version_table="alembic_version_gateway")
