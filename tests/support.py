"""Helpers shared by the tests (plain functions; fixtures live in conftest.py)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from consultant.config import Settings


def make_settings(db_url: str = "sqlite:///:memory:", imap_user=None, **sections) -> Settings:
    """Settings for a test: the database, optionally a Dovecot user, and section overrides."""
    data: dict = {"database": {"url": db_url}}
    if imap_user is not None:
        data["imap"] = dict(host=imap_user.host, port=imap_user.port, security="plain",
                            username=imap_user.username, password=imap_user.password, idle=False)
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return Settings.model_validate(data)


def smtp_section(server, **extra) -> dict:
    """The [smtp] section for the test SMTP server (plain on loopback unless told otherwise)."""
    return dict(dict(host=server.host, port=server.port, security="plain"), **extra)


def drafted(engine, settings, raw: bytes) -> int:
    """Store one message and run it through screen, parse and draft; return its id."""
    return drafted_all(engine, settings, raw)[0]


def drafted_all(engine, settings, *raws: bytes) -> list[int]:
    """Store several messages, then run them through screen, parse and draft in one go (one code
    index for all, which is what takes the time); return their ids in order."""
    from sqlmodel import Session

    from consultant import operator
    from consultant.process import Processor

    with Session(engine) as session:
        ids = [operator.inject(session, raw, "test", "test.eml") for raw in raws]
        session.commit()
    with Processor(engine, settings) as processor:
        processor.run_until_done()
    return ids


def question_bytes(n: int, body: str = "Can I bill 62303 with 72128, and do I need modifier 59? Dx M54.16",
                   sender: str | None = None) -> bytes:
    sender = sender or f"coder{n}@ridgeview-clinic.test"
    return (f"From: Coder {n} <{sender}>\r\nTo: ask@caseconsultant.test\r\n"
            f"Subject: myelogram question {n}\r\nMessage-ID: <q{n}@ridgeview-clinic.test>\r\n"
            f"References: <earlier{n}@ridgeview-clinic.test>\r\n\r\n{body}\r\n").encode()


@contextmanager
def recorded(engine) -> Iterator[list[tuple[str, object]]]:
    """The SQL statements, with their parameters, that the engine runs inside the block."""
    from sqlalchemy import event

    seen: list[tuple[str, object]] = []

    def remember(_conn, _cursor, statement, parameters, _context, _many):
        seen.append((statement, parameters))
    event.listen(engine, "before_cursor_execute", remember)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", remember)


def query_plans(engine, statements: list[tuple[str, object]]) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN lines for these statements (each with its parameters)."""
    with engine.connect() as connection:
        return [row[-1] for statement, parameters in statements
                for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
