"""Poll leadership: with several workers on one PostgreSQL, one at a time fetches a mailbox.

The leader holds a session-level advisory lock, `pg_try_advisory_lock(key)`, on a connection of its
own for the length of one fetch and releases it afterwards; a worker that does not get the lock
skips the fetch (and still processes stored work). The key is fixed per account and mailbox (see
`lock_key`), so an operator can find the holder in `pg_locks`. If the leader dies, PostgreSQL ends
its session and the lock with it. On SQLite there is one worker per database file and this is a
no-op that always leads.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Engine

from .db import is_sqlite
from .logs import log, redact

KEY_PREFIX = "consultant poll\n"


def lock_key(account: str, mailbox: str) -> int:
    """The advisory lock key of one mailbox: the first 8 bytes of
    sha256("consultant poll\\n<account>\\n<mailbox>") read as a signed big-endian 64-bit integer."""
    digest = hashlib.sha256(f"{KEY_PREFIX}{account}\n{mailbox}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    """`with leadership.lead() as leading:` fetch only when `leading` is true."""

    def __init__(self, engine: Engine, account: str, mailbox: str):
        self.engine, self.account, self.mailbox = engine, account, mailbox
        self.key = lock_key(account, mailbox)
        self.name = f"{redact(account)} {mailbox}"  # the account may be an address: never logged whole
        self.shared = not is_sqlite(engine)

    @contextmanager
    def lead(self) -> Iterator[bool]:
        """Yield whether this worker leads the fetch now; the lock is held until the block ends.
        Raises OperationalError (an outage) if the database cannot be reached."""
        if not self.shared:
            yield True
            return
        with self.engine.connect() as connection:
            leading = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                              {"key": self.key}).scalar())
            connection.commit()  # the lock is the session's, not the transaction's: hold no snapshot
            if not leading:
                log.debug("poll lead: another worker is fetching %s; this poll skips the fetch", self.name)
                yield False
                return
            # Timestamps taken inside the lock (after taking it, before releasing it), so the
            # intervals two workers log can never overlap while the lock works.
            began = time.time()
            try:
                yield True
            finally:
                ended = time.time()
                self._release(connection)
                log.debug("poll lead: fetched %s from %.6f to %.6f", self.name, began, ended)

    def _release(self, connection) -> None:
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            connection.commit()
        except Exception:
            # Closing the connection for good ends the session, and its lock with it; the pool must
            # not hand out a connection that still holds the lead.
            connection.invalidate()
