"""SQLite's WAL checkpoints beside the worker, not in its commits.

In WAL mode every commit appends to the -wal file, and by default the commit that takes it past
1,000 pages also copies the pages back into the database file (a checkpoint): during a backlog that
was most of the time the worker spent committing. While a Processor runs, the connections it uses
do not checkpoint on their own; a thread does it (PRAGMA wal_checkpoint(PASSIVE): it never waits
for readers or writers) after each batch is written, on its own connection, while the worker goes
on (SQLite does the copying without holding Python's GIL). A connection handed back to the pool
gets SQLite's default again, so whatever else uses the engine after the Processor is unchanged.
"""
from __future__ import annotations

import sqlite3
import threading

from sqlalchemy import event
from sqlalchemy.engine import Engine

from .logs import error

DEFAULT_PAGES = 1000  # SQLite's own wal_autocheckpoint


class Checkpointer:
    def __init__(self, engine: Engine):
        self.engine, self.path = engine, engine.url.database
        self.active = engine.dialect.name == "sqlite" and bool(self.path) and self.path != ":memory:"
        if not self.active:
            return
        self._wake, self._stopping = threading.Event(), False
        # Functions of this instance's own: two Processors on one engine each add and remove theirs.
        self._listeners = (("checkout", lambda *args: self._checkout(*args)),
                           ("checkin", lambda *args: self._checkin(*args)))
        for name, listener in self._listeners:
            event.listen(engine, name, listener)
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    @staticmethod
    def _checkout(dbapi_connection, _record, _proxy) -> None:
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    @staticmethod
    def _checkin(dbapi_connection, _record) -> None:
        if dbapi_connection is not None:
            try:
                dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={DEFAULT_PAGES}")
            except sqlite3.Error:  # a broken connection: the pool drops it anyway
                pass

    def poke(self) -> None:
        """A batch was written: checkpoint what the WAL holds, soon, in the thread."""
        if self.active:
            self._wake.set()

    def close(self) -> None:
        if not self.active:
            return
        self.active = False
        for name, listener in self._listeners:
            event.remove(self.engine, name, listener)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, timeout=1.0, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                try:  # also the last time, on close: what the worker wrote goes to the file
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # busy or gone: the next batch asks again
                    error.warning("WAL checkpoint did not run: %s", exc)
                if self._stopping:
                    return
        finally:
            connection.close()
