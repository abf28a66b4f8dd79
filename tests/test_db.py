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


def test_postgresql_compresses_the_long_values_of_each_question_with_lz4(pg_engine):
    from sqlalchemy import insert

    from consultant.models import Question, RawMessage, Reply

    long_text = "Can I bill 62303 with 72128, and do I need modifier 59? " * 200  # well over 2 kB: compressed
    with pg_engine.begin() as connection:
        methods = dict(connection.exec_driver_sql(
            "SELECT attrelid::regclass::text || '.' || attname, attcompression FROM pg_attribute "
            "WHERE attrelid IN ('question'::regclass, 'reply'::regclass, 'raw_message'::regclass) "
            "AND attname IN ('new_text', 'analysis', 'text', 'html', 'raw', 'subject')").all())
        qid = connection.execute(insert(Question).returning(Question.id), dict(
            status="drafted", dedupe_key="<lz4@t>", new_text=long_text, analysis={"notes": [long_text]})).scalar_one()
        connection.execute(insert(RawMessage), dict(question_id=qid, raw=long_text.encode()))
        connection.execute(insert(Reply), dict(question_id=qid, kind="answer", to_addr="a@t", subject="s",
                                               text=long_text, html=f"<p>{long_text}</p>", message_id="<m@t>"))
        stored = connection.exec_driver_sql(
            "SELECT pg_column_compression(q.new_text), pg_column_compression(r.html), q.new_text, q.analysis::text, "
            f"r.text, m.raw FROM question q JOIN reply r ON r.question_id = q.id JOIN raw_message m ON "
            f"m.question_id = q.id WHERE q.id = {int(qid)}").one()
    assert {name: methods[name] for name in ("question.new_text", "question.analysis", "reply.text", "reply.html",
                                              "raw_message.raw")} == dict.fromkeys(
        ("question.new_text", "question.analysis", "reply.text", "reply.html", "raw_message.raw"), "l")
    assert methods["question.subject"] == ""  # short columns keep the default
    assert stored[:2] == ("lz4", "lz4")
    assert stored[2] == long_text and long_text in stored[3] and stored[4] == long_text
    assert bytes(stored[5]) == long_text.encode()
