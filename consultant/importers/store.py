"""What every importer writes with: releases that replace their namesake, bulk inserts, new codes."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlmodel import Session

from ..codetables import Code, Descriptor, Family, FeeRule, Mue, PtpEdit, Relation, Release

CHUNK = 10_000
Progress = Callable[[int, int], None]  # (rows written, rows in all)
# Every table whose rows name a release: a re-import deletes the old release's rows from each.
RELEASE_TABLES = (Descriptor, PtpEdit, Mue, FeeRule, Relation, Code, Family)


@dataclass
class Imported:
    """What one import did: the release, its row count, and what the rows are ("PTP edit pairs")."""

    release: Release
    rows: int
    what: str
    new_codes: int = 0  # Code rows added for codes nothing had loaded before
    skipped: int = 0  # records read but not stored (HCPCS modifier records)


def new_release(session: Session, kind: str, name: str, file_name: str, effective: str | None) -> Release:
    """A fresh release; an earlier one of the same kind and name loses its rows in every table
    first, so a re-import replaces instead of duplicating. The caller commits (one transaction)."""
    old = session.execute(select(Release.id).where(Release.kind == kind, Release.name == name)).scalars().all()
    # The new row goes in before the old one goes out, so its id is always higher, even on SQLite,
    # which would otherwise hand the deleted id out again: "loaded last" is "highest id".
    release = Release(kind=kind, name=name[:200], file_name=file_name[:300], effective=effective)
    session.add(release)
    session.flush()
    if old:
        for table in RELEASE_TABLES:
            session.execute(delete(table).where(table.release_id.in_(old)))
        session.execute(delete(Release).where(Release.id.in_(old)))
    return release


def bulk_insert(session: Session, table, columns: Sequence[str], rows: Sequence[tuple],
                progress: Progress | None = None, extra: tuple = ()) -> int:
    """Insert tuples, each followed by `extra` (the release id), in the session's transaction:
    COPY on PostgreSQL, executemany in chunks on SQLite.

    Values are plain text, numbers and booleans (dates as ISO text), so neither driver has to
    adapt Python objects row by row.
    """
    connection = session.connection()
    total = len(rows)
    names = ", ".join(columns)
    if connection.dialect.name == "postgresql":
        driver = connection.connection.driver_connection
        with driver.cursor() as cursor:
            for start in range(0, total, CHUNK):
                with cursor.copy(f"COPY {table.__tablename__} ({names}) FROM STDIN") as copy:
                    for row in rows[start:start + CHUNK]:
                        copy.write_row(row + extra)
                if progress:
                    progress(min(start + CHUNK, total), total)
    else:
        sql = f"INSERT INTO {table.__tablename__} ({names}) VALUES ({', '.join('?' * len(columns))})"
        for start in range(0, total, CHUNK):
            connection.exec_driver_sql(sql, [row + extra for row in rows[start:start + CHUNK]])
            if progress:
                progress(min(start + CHUNK, total), total)
    if progress and not total:
        progress(0, 0)
    return total


def add_missing_codes(session: Session, system: str, codes: Sequence[tuple], release_id: int) -> int:
    """Code rows for codes nothing has loaded yet, so the finder knows them; a row that exists
    (our starter set, an earlier release) is kept as it is. `codes` holds (code, title, status,
    effective, end date) with ISO dates; family stays None. Returns how many were new."""
    known = set(session.execute(select(Code.code).where(Code.system == system)).scalars())
    new = [(system, code, title[:200], False, True, status, effective, ended)
           for code, title, status, effective, ended in codes if code not in known]
    bulk_insert(session, Code, ("system", "code", "title", "addon", "billable", "status", "effective",
                                "end_date", "release_id"), new, extra=(release_id,))
    return len(new)


def in_force(session: Session, kind: str) -> list[Release]:
    """The releases of a kind that lookups use: for each setting (PTP, MUE) or for the kind as a
    whole, the one loaded last. Re-importing an older file therefore puts it back in force."""
    table = {"ncci-ptp": PtpEdit, "mue": Mue}.get(kind)
    if table is None:
        newest = session.execute(select(Release).where(Release.kind == kind)
                                 .order_by(Release.id.desc()).limit(1)).scalar_one_or_none()
        return [newest] if newest else []
    ids = session.execute(select(func.max(table.release_id)).group_by(table.setting)).scalars().all()
    return list(session.execute(select(Release).where(Release.id.in_(ids)).order_by(Release.id)).scalars())
