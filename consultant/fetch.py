"""Fetch: store new IMAP messages with their key and Message-ID, then advance the checkpoint."""
from __future__ import annotations

import hashlib
import socket
import ssl
import threading
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from . import states
from .config import Imap, Settings
from .errors import ConfigError
from .logs import error, log, vet
from .models import Checkpoint, RawMessage, utcnow
from .reading import parse_msg_ids
from .screen import headers_of
from .states import Status

ACTOR = "fetch"
# What an unreachable server looks like: the message is not at fault, so no state changes.
IMAP_OUTAGES = (OSError, socket.timeout, ssl.SSLError, IMAPClientError)
STUB_FIELDS = b"BODY[HEADER.FIELDS (MESSAGE-ID FROM SUBJECT DATE)]"


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


def dedupe_key(raw: bytes) -> tuple[str, str | None]:
    """The Message-ID when it is sane, else a hash of the bytes: the same mail is stored once."""
    ids = parse_msg_ids(str(headers_of(raw).get("Message-ID", "")))
    if ids:
        return ids[0], ids[0]
    return "sha256:" + hashlib.sha256(raw).hexdigest(), None


def _megabytes(size: int) -> str:
    return f"{size / 1048576:.1f} MB"


class Fetcher:
    """One mailbox of one account; `run_once` stores what is new since the checkpoint."""

    def __init__(self, engine: Engine, settings: Settings, stop: threading.Event | None = None):
        self.engine, self.settings, self.imap = engine, settings, settings.imap
        self.account, self.mailbox = settings.imap.account_name(), settings.imap.mailbox
        self.stop = stop or threading.Event()

    def run_once(self, client: IMAPClient, counts: FetchCounts | None = None) -> FetchCounts:
        """Store every message above the checkpoint, batch by batch. Raises on IMAP or DB outage,
        having changed nothing that was not committed with its checkpoint (`counts`, if given, then
        holds what the committed batches stored)."""
        readonly = self.imap.after_fetch == "none"
        selected = client.select_folder(self.mailbox, readonly=readonly)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        last_uid = self._checkpoint(uidvalidity)
        uids = sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
        counts = counts if counts is not None else FetchCounts()
        size = max(1, self.imap.batch_size)
        for start in range(0, len(uids), size):
            if self.stop.is_set():
                break
            batch = uids[start:start + size]
            stored = self._batch(client, uidvalidity, batch, counts)
            self._after_fetch(client, stored)
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

    def _batch(self, client: IMAPClient, uidvalidity: int, batch: list[int], counts: FetchCounts) -> list[int]:
        limit = self.settings.limits.max_message_bytes
        sizes = {uid: int(data.get(b"RFC822.SIZE", 0)) for uid, data in client.fetch(batch, ["RFC822.SIZE"]).items()}
        small = [u for u in batch if u in sizes and sizes[u] <= limit]
        big = [u for u in batch if u in sizes and sizes[u] > limit]
        bodies = client.fetch(small, ["BODY.PEEK[]"]) if small else {}
        stubs = client.fetch(big, [STUB_FIELDS.replace(b"BODY", b"BODY.PEEK").decode()]) if big else {}
        present = []
        with Session(self.engine) as session:
            for uid in batch:
                if uid in bodies and b"BODY[]" in bodies[uid]:
                    raw, whole = bytes(bodies[uid][b"BODY[]"]), True
                elif uid in stubs:
                    raw, whole = bytes(stubs[uid].get(STUB_FIELDS) or b""), False
                else:
                    continue  # expunged between SEARCH and FETCH: nothing to keep
                counts.seen += 1
                present.append(uid)
                self._store(session, uidvalidity, uid, raw, whole, sizes[uid], counts)
            point = session.get(Checkpoint, (self.account, self.mailbox))
            point.last_uid, point.updated_at = max(batch), utcnow()
            session.commit()  # the messages and the checkpoint move together
        return present

    def _store(self, session: Session, uidvalidity: int, uid: int, raw: bytes, whole: bool,
               size: int, counts: FetchCounts) -> None:
        key, message_id = dedupe_key(raw)
        if not whole and message_id is None:
            key = f"{key}:{size}"
        qid = states.create(session, ACTOR, dedupe_key=key, message_id=message_id, account=self.account,
                            mailbox=self.mailbox, uidvalidity=uidvalidity, uid=uid, size=size,
                            body_downloaded=whole)
        if qid is None:
            counts.duplicates += 1
            vet.info("%s uid %s: already stored (same Message-ID or bytes); skipped", self.mailbox, uid)
            return
        session.add(RawMessage(question_id=qid, raw=raw))
        counts.stored += 1
        if not whole:
            counts.oversize += 1
            limit = self.settings.limits.max_message_bytes
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
