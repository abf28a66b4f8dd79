"""Database engines (SQLite in WAL mode or PostgreSQL), sessions and schema migrations."""
from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import timezone
from pathlib import Path

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, StatementError
from sqlmodel import Session
from sqlmodel.sql.sqltypes import UTCDateTime

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


# The worker writes each batch with a few statements run once per row (executemany). SQLAlchemy
# converts every row's parameters on its own (bind processors, parameter dicts, type checks): a
# large share of the worker's time. execute_many compiles such a statement once per dialect and
# hands the driver rows already in its form, converted as the column types would convert them.
_PREPARED: dict[tuple, "_Prepared"] = {}


_last_datetime: tuple = (None, None)  # a batch stamps many rows with one `now`


def _sqlite_datetime(value):
    """UTCDateTime on SQLite without its layers: what sqlmodel's UTCDateTime (aware only, in UTC)
    and SQLite's DATETIME ('%Y-%m-%d %H:%M:%S.%f', microseconds always) make of a datetime."""
    global _last_datetime
    last = _last_datetime
    if value is last[0]:
        return last[1]
    if value is None:
        return None
    if value.utcoffset() is None:
        raise ValueError("Datetime values must have timezone information.")
    text = value.astimezone(timezone.utc).isoformat(" ", "microseconds")[:26]
    _last_datetime = (value, text)
    return text


class _Prepared:
    """A statement compiled for one dialect and one set of row keys: its SQL, the bind names in
    the driver's order, and how each value is converted (None: passed as it is) or made (defaults)."""

    __slots__ = ("statement", "sql", "names", "converters", "made", "positional", "pages")

    def __init__(self, statement, dialect, keys: tuple[str, ...], returning: bool = False):
        compiled = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
        if compiled.post_compile_params or compiled.literal_execute_params or \
                bool(compiled.effective_returning) != returning:
            raise NotImplementedError("not a plain INSERT, UPDATE or DELETE (or INSERT ... RETURNING)")
        self.statement, self.sql, self.positional = statement, compiled.string, dialect.positional
        self.pages = None  # PostgreSQL's multi-row form of an INSERT (see execute_many), once asked
        self.names = tuple(compiled.positiontup if dialect.positional else compiled.binds)
        prefetch = {column.key: column for column in compiled.insert_prefetch}
        self.converters, self.made = [], {}
        for name in self.names:
            bind = compiled.binds[name]
            if name not in keys:  # a column default, or a value fixed in the statement
                column = prefetch.get(name)
                if column is not None and column.default.is_callable:
                    self.made[name] = column.default.arg
                elif column is not None:
                    self.made[name] = lambda _context, value=column.default.arg: value
                else:
                    self.made[name] = lambda _context, bind=bind: bind.effective_value
            if dialect.name == "sqlite" and type(bind.type) is UTCDateTime:
                self.converters.append(_sqlite_datetime)
            else:
                self.converters.append(bind.type._cached_bind_processor(dialect))
        self.converters = tuple(self.converters)

    def rows(self, rows: list[dict]) -> list:
        names, converters, made = self.names, self.converters, self.made
        out = []
        for row in rows:
            if made:
                row = dict(row, **{name: make(None) for name, make in made.items()})
            values = [row[name] if convert is None else convert(row[name])
                      for name, convert in zip(names, converters)]
            out.append(tuple(values) if self.positional else dict(zip(names, values)))
        return out


def _prepared(connection: Connection, statement, rows: list[dict], returning: bool = False) -> "_Prepared":
    dialect = connection.dialect
    keys = tuple(rows[0])
    cache_key = (id(statement), dialect.name, keys)
    prepared = _PREPARED.get(cache_key)
    if prepared is None or prepared.statement is not statement:
        prepared = _Prepared(statement, dialect, keys, returning)
        if len(_PREPARED) < 256:  # module-level statements with a handful of key sets
            _PREPARED[cache_key] = prepared
    return prepared


def _driver_rows(prepared: _Prepared, rows: list[dict]) -> list:
    try:
        return prepared.rows(rows)
    except Exception as exc:  # as SQLAlchemy reports a value its bind processor refuses
        raise StatementError(f"({type(exc).__module__}.{type(exc).__name__}) {exc}", prepared.sql,
                             None, exc) from exc


def execute_many(connection: Connection, statement, rows: list[dict]) -> None:
    """connection.execute(statement, rows) for a plain INSERT, UPDATE or DELETE run once per row,
    with the same outcome (column defaults, bind types, errors as SQLAlchemy errors) at a fraction
    of the cost. Every row has the keys of the first; the caller commits.

    On PostgreSQL an INSERT goes as multi-row INSERTs (`VALUES (...), (...), ...`, each row's
    parameters renamed), as many rows a statement as psycopg still keeps the parsing of (50
    parameters), run as one executemany (psycopg pipelines it): the server parses and runs one
    statement per page of rows instead of one per row, which was most of the time a batch took to
    write there."""
    if not rows:
        return
    prepared = _prepared(connection, statement, rows)
    params = _driver_rows(prepared, rows)
    if connection.dialect.name == "postgresql" and len(params) > 1 and _pg_pages(prepared) is not None:
        page = max(1, PG_PARAMETERS // len(prepared.names))
        full = len(params) - len(params) % page
        if full:
            connection.exec_driver_sql(_pg_multirow(prepared, page),
                                       [_renamed(params[start:start + page]) for start in range(0, full, page)])
        if full < len(params):
            connection.exec_driver_sql(_pg_multirow(prepared, len(params) - full), _renamed(params[full:]))
        return
    connection.exec_driver_sql(prepared.sql, params)


# psycopg parses a statement's text for its parameters on every run, except that it remembers
# statements of up to 50 parameters (psycopg._queries.MAX_CACHED_STATEMENT_PARAMS) and 4,096
# characters: a page of rows stays within both.
PG_PARAMETERS = 50
_NAMED_PARAM = re.compile(r"%\((\w+)\)s")


def _renamed(rows: list[dict]) -> dict:
    return {f"{name}__{n}": value for n, row in enumerate(rows) for name, value in row.items()}


def _pg_pages(prepared: "_Prepared") -> tuple[str, str] | None:
    """(everything before VALUES, the one row of values) of a plain INSERT compiled for
    PostgreSQL's psycopg (named parameters, `%(name)s::TYPE`), or None for any other statement."""
    if prepared.pages is None:
        head, found, one = prepared.sql.partition(" VALUES (")
        named = _NAMED_PARAM.findall(one)
        plain = (prepared.sql.startswith("INSERT INTO ") and found and one.endswith(")") and not prepared.positional
                 and " VALUES (" not in one and "RETURNING" not in one and set(named) == set(prepared.names)
                 and len(named) == len(prepared.names) and not any("__" in name for name in named))
        prepared.pages = (head, "(" + one, {}) if plain else ()
    return prepared.pages or None


def _pg_multirow(prepared: "_Prepared", count: int) -> str:
    head, one, made = prepared.pages
    sql = made.get(count)
    if sql is None:
        rows = ", ".join(_NAMED_PARAM.sub(lambda m: f"%({m.group(1)}__{n})s", one) for n in range(count))
        sql = f"{head} VALUES {rows}"
        if len(made) < 64:  # a full page and the shorter last ones
            made[count] = sql
    return sql


def insert_returning(connection: Connection, statement, rows: list[dict]) -> list[tuple]:
    """The rows that connection.execute(statement, rows).all() returns for an INSERT ... RETURNING
    (in no particular order). On SQLite the rows go as multi-row INSERTs built here, as SQLAlchemy
    pages them but without its per-row work; elsewhere through SQLAlchemy."""
    if not rows:
        return []
    if connection.dialect.name != "sqlite":
        return [tuple(row) for row in connection.execute(statement, rows)]
    prepared = _prepared(connection, statement, rows, returning=True)
    one = "(" + ", ".join("?" * len(prepared.names)) + ")"
    head, found, tail = prepared.sql.partition(f" VALUES {one}")
    if not found or one in tail:
        raise NotImplementedError(f"cannot page {prepared.sql!r}")
    params = _driver_rows(prepared, rows)
    page = max(1, min(connection.dialect.insertmanyvalues_page_size,
                      connection.dialect.insertmanyvalues_max_parameters // len(prepared.names)))
    out = []
    for start in range(0, len(params), page):
        chunk = params[start:start + page]
        sql = f"{head} VALUES {', '.join([one] * len(chunk))}{tail}"
        out += [tuple(row) for row in connection.exec_driver_sql(sql, tuple(v for row in chunk for v in row))]
    return out
