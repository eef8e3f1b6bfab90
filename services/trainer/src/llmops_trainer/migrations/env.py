"""Alembic environment. The service runs it at start-up on its own connection (see ``llmops_trainer.db.migrate``);
``alembic -x url=sqlite:///... revision --autogenerate`` works from this directory too."""

from alembic import context
from sqlalchemy import create_engine

from llmops_trainer.db import Base
from llmops_trainer.jobs import models as _jobs  # noqa: F401  (tables onto Base.metadata)

config = context.config


def _run(connection) -> None:
    # Batch mode lets ALTERs work on SQLite (it rebuilds the table).
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        version_table=config.attributes.get("version_table", "alembic_version_trainer"),
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True)["url"].replace("+aiosqlite", "")
    with create_engine(url).connect() as conn:
        _run(conn)
