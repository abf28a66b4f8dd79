"""Database engines (SQLite in WAL mode or PostgreSQL), sessions and schema migrations."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlmodel import Session

from .errors import ConfigError, Outage

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for another's lock before it is an outage


def _sqlite_pragmas(dbapi_connection, _record, busy_timeout: float = BUSY_TIMEOUT):
    # Let SQLAlchemy, not pysqlite, issue BEGIN, so SAVEPOINTs work (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection):
    """BEGIN IMMEDIATE takes the write lock up front, so two writers queue on the busy timeout
    instead of one failing with 'database is locked' when it upgrades a stale read snapshot.
    Read-only work asks for a plain BEGIN with execution_options(readonly=True)."""
    readonly = connection.get_execution_options().get("readonly")
    connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def make_engine(url: str, busy_timeout: float = BUSY_TIMEOUT) -> Engine:
    """An engine for a database URL; SQLite files get their folder, WAL and a busy timeout (seconds)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database.url: {url!r} is not a database URL")
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout})
        event.listen(engine, "connect", lambda conn, record: _sqlite_pragmas(conn, record, busy_timeout))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg")
    try:
        return create_engine(url, pool_pre_ping=True)
    except Exception as exc:  # an unknown driver name, a missing DBAPI
        raise ConfigError(f"database.url: cannot use {parsed.drivername!r}: {exc}")


@contextmanager
def session_scope(engine: Engine):
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(engine: Engine):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine) -> None:
    """Create or migrate the schema to the newest revision."""
    from alembic import command

    try:
        with engine.begin() as connection:
            config = alembic_config(engine)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        raise Outage(f"database unreachable: {exc.orig}") from exc


def is_initialised(engine: Engine) -> bool:
    try:
        return inspect(engine).has_table("question")
    except OperationalError as exc:
        raise Outage(f"database unreachable: {exc.orig}") from exc


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
