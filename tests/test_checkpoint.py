"""SQLite's WAL is checkpointed by a thread while a Processor runs, not by the worker's commits
(consultant.checkpoint); other users of the engine keep SQLite's default."""
import sqlite3
from contextlib import closing
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

from consultant import operator
from consultant.models import Question
from consultant.process import Processor
from support import make_settings, question_bytes


def autocheckpoint(engine) -> int:
    with engine.connect() as connection:
        return connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()


def test_the_worker_leaves_checkpoints_to_its_thread_and_the_wal_is_copied_back(sqlite_engine, sqlite_url):
    with Session(sqlite_engine) as session:
        ids = [operator.inject(session, question_bytes(n, sender=f"ck{n}@clinic.test"), "test", "t.eml")
               for n in range(60)]
        session.commit()
    assert autocheckpoint(sqlite_engine) == 1000
    processor = Processor(sqlite_engine, make_settings(sqlite_url, worker={"processes": 0}))
    try:
        assert processor.checkpointer.active
        assert autocheckpoint(sqlite_engine) == 0  # the worker's connections do not checkpoint
        counts = processor.run_until_done()
    finally:
        processor.close()
    assert counts.drafted == len(ids)
    assert autocheckpoint(sqlite_engine) == 1000  # handed back as SQLite has it
    sqlite_engine.dispose()
    with closing(sqlite3.connect(sqlite_engine.url.database)) as connection:
        busy, frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and frames == copied  # nothing was left in the WAL only
    # The thread's checkpoints put the batch into the database file itself: a copy of the file
    # alone (no -wal beside it) has every drafted question.
    path = Path(sqlite_engine.url.database)
    copy = path.with_name("copy.db")
    copy.write_bytes(path.read_bytes())
    from consultant.db import make_engine
    alone = make_engine(f"sqlite:///{copy}")
    try:
        with Session(alone) as session:
            drafted = session.execute(select(func.count()).where(Question.id.in_(ids),
                                                                 Question.status == "drafted")).scalar()
    finally:
        alone.dispose()
    assert drafted == len(ids)


def test_postgres_and_memory_databases_need_no_checkpointer(engine, db_url):
    processor = Processor(engine, make_settings(db_url, worker={"processes": 0}))
    try:
        assert processor.checkpointer.active == db_url.startswith("sqlite")
    finally:
        processor.close()
