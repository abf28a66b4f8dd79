"""Alembic environment: runs on the connection that consultant.db.upgrade() hands it."""
from alembic import context
from sqlmodel import SQLModel

from consultant import codetables, models  # noqa: F401  (register the tables)
from consultant import accounts  # noqa: F401  (the desk users and logins)
from consultant import opstables  # noqa: F401  (the operator tables)

config = context.config
target_metadata = SQLModel.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = config.attributes["engine"]
        with engine.begin() as connection:
            _migrate(connection)
    else:
        _migrate(connection)


def _migrate(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run()
