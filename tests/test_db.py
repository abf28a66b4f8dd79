"""The schema: the Alembic migration builds exactly what the models describe, on both databases."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
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


def test_codes_found_before_the_question_code_table_are_indexed_by_the_migration(tmp_path):
    from alembic import command
    from sqlmodel import Session

    from consultant.db import alembic_config
    from consultant.models import QuestionCode

    engine = make_engine(f"sqlite:///{tmp_path}/old.db")
    command.upgrade(alembic_config(engine), "0006")
    codes = ('[{"code": "62303", "system": "CPT", "quoted": false}, '
             '{"code": "99214", "system": "CPT", "quoted": true}, {"code": "62303", "system": "CPT", "quoted": true}]')
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO question (id, status, attempts, dedupe_key, size, body_downloaded, received_at, updated_at, "
            f"codes) VALUES (1, 'drafted', 0, 'k1', 0, 1, '2026-01-01', '2026-01-01', '{codes}')")
        connection.exec_driver_sql(
            "INSERT INTO question (id, status, attempts, dedupe_key, size, body_downloaded, received_at, updated_at) "
            "VALUES (2, 'received', 0, 'k2', 0, 1, '2026-01-01', '2026-01-01')")
    upgrade(engine)
    with Session(engine) as session:
        rows = session.execute(select(QuestionCode).order_by(QuestionCode.code)).scalars().all()
        assert [(r.question_id, r.code, r.quoted) for r in rows] == [(1, "62303", False), (1, "99214", True)]
    engine.dispose()
