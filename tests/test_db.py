"""The schema: the Alembic migration builds exactly what the models describe, on both databases."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from consultant import codetables, models  # noqa: F401  (register the tables)
from consultant import accounts  # noqa: F401  (the desk users and logins)
from consultant import opstables  # noqa: F401  (the operator tables)
from consultant.db import is_initialised, make_engine, upgrade


def not_the_search_index(name, kind, _parent) -> bool:
    """code_search (and FTS5's shadow tables) is derived data that textsearch owns, not a model."""
    return not (kind in ("table", "index") and name and name.startswith(("code_search", "ix_code_search")))


def test_the_migration_matches_the_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": not_the_search_index})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_upgrade_creates_the_schema_and_running_it_again_is_harmless(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/fresh.db")
    assert not is_initialised(engine)
    upgrade(engine)
    upgrade(engine)
    assert is_initialised(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
