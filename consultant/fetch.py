"""Fetch: store new IMAP messages with their key and Message-ID, then advance the checkpoint."""
from __future__ import annotations

import hashlib
import re
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session

from . import states
from .config import Imap, Settings
from .db import execute_many
from .errors import ConfigError
from .logs import error, log, vet
from .mimebounds import header_block_size
from .models import Checkpoint, RawMessage, utcnow
from .reading import parse_msg_ids
from .screen import headers_of
from .states import Status

ACTOR = "fetch"
# What an unreachable server looks like: the message is not at fault, so no state changes.
IMAP_OUTAGES = (OSError, socket.timeout, ssl.SSLError, IMAPClientError)
STUB_FIELDS = b"BODY[HEADER.FIELDS (MESSAGE-ID FROM SUBJECT DATE)]"
_INSERT_RAW = insert(RawMessage)


@dataclass
class FetchCounts:
    seen: int = 0
    stored: int = 0
    duplicates: int = 0
    oversize: int = 0


def tls_context(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile or None)


def connect(imap: Imap) -> IMAPClient:
    """Log in over TLS, STARTTLS or (loopback only, checked by the config) plain IMAP."""
    password = imap.secret()
    if not imap.username or not password:
        raise ConfigError("imap.username and the IMAP password (CONSULTANT_IMAP__PASSWORD or "
                          "imap.password_file) are required")
    if imap.security == "tls":
        client = IMAPClient(imap.host, imap.port, ssl=True, ssl_context=tls_context(imap.cafile),
                            timeout=imap.timeout)
    else:
        client = IMAPClient(imap.host, imap.port, ssl=False, timeout=imap.timeout)
        if imap.security == "starttls":
            client.starttls(tls_context(imap.cafile))
    client.normalise_times = False  # INTERNALDATE with its zone, not as naive local time
    try:
        client.login(imap.username, password)
    except Exception:
        client.shutdown()
        raise
    return client


def disconnect(client: IMAPClient) -> None:
    """Log out; when the connection is already broken, close the socket anyway. Never raises."""
    try:
        client.logout()
    except Exception:  # imaplib closes its socket only after a LOGOUT that went through
        try:
            client.shutdown()
        except Exception:
            pass


# After "Message-ID:" at the start of a header line: the value and what ends its line (CRLF, CR or
# LF, as the parser splits lines); a value of printable ASCII reads as the parser reads it.
_FIELD_VALUE = re.compile(rb"[ \t]*([^\r\n]*)(?:\r\n|\r|\n|\Z)")
_PRINTABLE = re.compile(rb"[\t\x20-\x7e]*")


def message_id_field(block: bytes) -> str:
    """The Message-ID field of a header block, as the header parser gives it (str of the first
    one, "" without one). The common case, the first such field on one line of printable ASCII,
    is read off the bytes; anything else (folded, 8-bit, control bytes) is left to the parser."""
    lowered = block.lower()
    at = lowered.find(b"message-id:")
    while at > 0 and block[at - 1] not in b"\r\n":  # not where a line starts: inside another field
        at = lowered.find(b"message-id:", at + 1)
    if at < 0:
        return ""  # every field the parser finds starts a line; none is named Message-ID
    found = _FIELD_VALUE.match(block, at + 11)
    end = found.end()
    if block[end:end + 1] not in (b" ", b"\t") and _PRINTABLE.fullmatch(found[1]):
        return found[1].decode("ascii")
    return str(headers_of(block).get("Message-ID", ""))


def dedupe_key(raw: bytes) -> tuple[str, str | None]:
    """The Message-ID when it is sane, else a hash of the bytes: the same mail is stored once.
    Only the header block is read (the parser would stop there too)."""
    ids = parse_msg_ids(message_id_field(raw[:header_block_size(raw, len(raw))]))
    if ids:
        return ids[0], ids[0]
    return "sha256:" + hashlib.sha256(raw).hexdigest(), None


def arrival(value) -> datetime | None:
    """The server's INTERNALDATE in UTC (connect() asks imapclient for aware datetimes)."""
    if not isinstance(value, datetime):
        return None
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _megabytes(size: int) -> str:
    return f"{size / 1048576:.1f} MB"


class Fetcher:
    """One mailbox of one account; `run_once` stores what is new since the checkpoint."""

    def __init__(self, engine: Engine, settings: Settings, stop: threading.Event | None = None):
        self.engine, self.settings, self.imap = engine, settings, settings.imap
        self.account, self.mailbox = settings.imap.account_name(), settings.imap.mailbox
        self.stop = stop or threading.Event()
        self.coming: Callable[[int], None] = lambda count: None  # told how many new messages there are
        self.stored: Callable[[], object] = lambda: None  # called after each batch is committed

    def run_once(self, client: IMAPClient, counts: FetchCounts | None = None) -> FetchCounts:
        """Store every message above the checkpoint, batch by batch. Raises on IMAP or DB outage,
        having changed nothing that was not committed with its checkpoint (`counts`, if given, then
        holds what the committed batches stored)."""
        readonly = self.imap.after_fetch == "none"
        selected = client.select_folder(self.mailbox, readonly=readonly)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        last_uid = self._checkpoint(uidvalidity)
        uids = sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
        # Those over the size limit, asked once (sizes never change), so a batch takes one FETCH.
        limit = self.settings.limits.max_message_bytes
        big = set(client.search(["UID", f"{last_uid + 1}:*", "LARGER", str(limit)])) if uids else set()
        self.coming(len(uids))
        counts = counts if counts is not None else FetchCounts()
        size = max(1, self.imap.batch_size)
        for start in range(0, len(uids), size):
            if self.stop.is_set():
                break
            batch = uids[start:start + size]
            stored = self._batch(client, uidvalidity, batch, big, counts)
            self._after_fetch(client, stored)
            self.stored()
        return counts

    def _checkpoint(self, uidvalidity: int) -> int:
        with Session(self.engine) as session:
            point = session.get(Checkpoint, (self.account, self.mailbox))
            if point is not None and point.uidvalidity == uidvalidity:
                return point.last_uid
            if point is None:
                session.add(Checkpoint(account=self.account, mailbox=self.mailbox, uidvalidity=uidvalidity))
            else:
                # The server renumbered the mailbox: read it again; Message-IDs keep out duplicates.
                log.warning("%s %s: UIDVALIDITY changed from %s to %s; re-reading the mailbox",
                            self.account, self.mailbox, point.uidvalidity, uidvalidity)
                point.uidvalidity, point.last_uid, point.updated_at = uidvalidity, 0, utcnow()
            session.commit()
            return 0

    def _batch(self, client: IMAPClient, uidvalidity: int, batch: list[int], big: set[int],
               counts: FetchCounts) -> list[int]:
        """Fetch a batch (whole messages; of those in `big`, over the size limit, only the header
        fields to tell the operator about them) and store it with the checkpoint."""
        small, large = [u for u in batch if u not in big], [u for u in batch if u in big]
        bodies = client.fetch(small, ["BODY.PEEK[]", "INTERNALDATE", "RFC822.SIZE"]) if small else {}
        stubs = client.fetch(large, [STUB_FIELDS.replace(b"BODY", b"BODY.PEEK").decode(), "INTERNALDATE",
                                     "RFC822.SIZE"]) if large else {}
        sizes = {uid: int(data.get(b"RFC822.SIZE", 0)) for fetched in (bodies, stubs) for uid, data in fetched.items()}
        fetched = []  # (uid, raw, whole, arrived)
        for uid in batch:
            if uid in bodies and b"BODY[]" in bodies[uid]:
                data, raw, whole = bodies[uid], bytes(bodies[uid][b"BODY[]"]), True
            elif uid in stubs:
                data, whole = stubs[uid], False
                raw = bytes(data.get(STUB_FIELDS) or b"")
            else:
                continue  # expunged between SEARCH and FETCH: nothing to keep
            fetched.append((uid, raw, whole, arrival(data.get(b"INTERNALDATE"))))
        counts.seen += len(fetched)
        with Session(self.engine) as session:
            self._store(session, uidvalidity, fetched, sizes, counts)
            point = session.get(Checkpoint, (self.account, self.mailbox))
            point.last_uid, point.updated_at = max(batch), utcnow()
            session.commit()  # the messages and the checkpoint move together
        return [uid for uid, *_ in fetched]

    def _store(self, session: Session, uidvalidity: int, fetched: list[tuple], sizes: dict[int, int],
               counts: FetchCounts) -> None:
        """Store the batch: its questions with one INSERT (a message stored already, or twice in the
        batch, is skipped by its key), then their raw mail; oversize ones are quarantined."""
        rows, keys = [], []
        for uid, raw, whole, arrived in fetched:
            key, message_id = dedupe_key(raw)
            if not whole and message_id is None:
                key = f"{key}:{sizes[uid]}"
            keys.append(key)
            rows.append(dict(dedupe_key=key, message_id=message_id, account=self.account, mailbox=self.mailbox,
                             uidvalidity=uidvalidity, uid=uid, size=sizes[uid], body_downloaded=whole,
                             arrived_at=arrived))
        stored = states.create_many(session, ACTOR, rows)
        raws, oversize = [], []
        for key, (uid, raw, whole, _arrived) in zip(keys, fetched):
            qid = stored.pop(key, None)  # popped: a second copy of the key in this batch is a duplicate
            if qid is None:
                counts.duplicates += 1
                vet.info("%s uid %s: already stored (same Message-ID or bytes); skipped", self.mailbox, uid)
                continue
            raws.append(dict(question_id=qid, raw=raw))
            if not whole:
                oversize.append((qid, sizes[uid]))
        if raws:
            execute_many(session.connection(), _INSERT_RAW, raws)
        counts.stored += len(raws)
        limit = self.settings.limits.max_message_bytes
        for qid, size in oversize:
            counts.oversize += 1
            states.transition(session, qid, Status.RECEIVED, Status.QUARANTINED, ACTOR,
                              f"message is {_megabytes(size)}, over limits.max_message_bytes "
                              f"({_megabytes(limit)}); its body was not downloaded", stage="fetch")

    def _after_fetch(self, client: IMAPClient, uids: list[int]) -> None:
        """Only after the commit: mark or move what we stored. A failure here loses nothing."""
        if not uids or self.imap.after_fetch == "none":
            return
        try:
            if self.imap.after_fetch == "flag":
                client.add_flags(uids, [self.imap.flag.encode()], silent=True)
            elif client.has_capability("MOVE"):
                client.move(uids, self.imap.move_to)
            else:
                client.copy(uids, self.imap.move_to)
                client.delete_messages(uids, silent=True)
                if client.has_capability("UIDPLUS"):
                    client.expunge(uids)  # UID EXPUNGE: only ours, not others' deleted mail
        except Exception as exc:
            error.warning("%s: after-fetch %s failed for %d messages: %s", self.mailbox,
                          self.imap.after_fetch, len(uids), exc)
