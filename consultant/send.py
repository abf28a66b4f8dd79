"""Send: approved -> sending -> sent, with a lease per reply, backoff on 4xx, failed on 5xx.

A batch is claimed in one transaction (each answer approved -> sending, each reply leased, the
lease renewed while the batch lasts) once the servers answered, then sent over one SMTP connection
(reused at once unless the server hung up or it sat idle, see Connection). Each outcome is
committed on its own; a reply the server took is recorded as sent while the server answers the
next reply's MAIL (the commit overlaps that round trip instead of coming before it; see _Batch). An
outage (no connection can be opened) changes no state and is logged once; replies claimed but not
yet tried when an outage or a stop cuts the batch short go back as they were. A reply whose own
transaction fails (4xx, or the connection lost after MAIL began) counts an attempt and backs off
until send.give_up_after. With smtp.sent_folder set, each reply is put in that IMAP folder as
pending, marked handed just before the message data goes to the server (after MAIL and RCPT) and
delivered once the server accepted it (before the database hears of it), so after a crash a reply
that never reached the server is sent again and one that may have is never resent blindly (see
sweep.reconcile; a claimed reply never tried has no copy, or a pending one, and is sent again).
The folder's steps run in a thread of their own, in that order (see sentcopy): the next reply's
copy is put there while the server takes in the current one's data, and the delivered mark is
waited for only when the reply is recorded. Without it, sending is at-least-once with the same
Message-ID.
"""
from __future__ import annotations

import os
import random
import smtplib
import socket
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from select import POLLIN, poll

from sqlalchemy import or_, select
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.engine import Engine
from sqlmodel import Session

from . import outbox, states
from .config import Settings, Smtp
from .fetch import IMAP_OUTAGES
from .fetch import connect as connect_imap
from .logs import redact, vet, without_server_text
from .mailout import SMTP_OUTAGES, SentFolder, build, connect_smtp, flatten, transmit
from .models import Question, Reply, as_utc, utcnow
from .outbox import Claimed
from .sentcopy import SentCopies
from .servicelog import Watch
from .states import Status


@dataclass
class SendCounts:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0


class _FolderLost(Exception):
    """The Sent folder could not be marked before the message data went to the SMTP server."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _smtp_code(exc: Exception) -> tuple[int | None, str]:
    """The SMTP reply code and the server's words, from whichever smtplib exception carries them."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, words = next(iter(exc.recipients.values()))
        return code, words.decode(errors="replace") if isinstance(words, bytes) else str(words)
    if isinstance(exc, smtplib.SMTPResponseException):
        words = exc.smtp_error
        return exc.smtp_code, words.decode(errors="replace") if isinstance(words, bytes) else str(words)
    return None, str(exc)


def _close(client: smtplib.SMTP, quit: bool = False) -> None:
    try:
        client.quit() if quit else client.close()
    except Exception:  # the connection may already be gone
        pass


class Connection:
    """The SMTP session a batch shares, opened on first use and reopened when the server has hung
    up. A healthy server says nothing until asked, so a connection with something to read (an
    unsolicited 421, the end of the stream) is replaced without a round trip; one idle for more
    than IDLE seconds is checked with NOOP first. Connecting raises (an outage) and changes nothing."""

    IDLE = 1.0

    def __init__(self, smtp: Smtp):
        self.smtp = smtp
        self.client: smtplib.SMTP | None = None
        self.used = 0.0  # time.monotonic() of the last transaction that ended normally

    def ready(self) -> smtplib.SMTP:
        if self.client is not None:
            if self._usable(self.client):
                return self.client
            self.close()
        self.client = connect_smtp(self.smtp)
        self.used = time.monotonic()
        return self.client

    def _usable(self, client: smtplib.SMTP) -> bool:
        sock = client.sock
        if sock is None:  # closed after a failure
            return False
        try:
            if getattr(sock, "pending", lambda: 0)():  # TLS: bytes the socket already decrypted
                return False
            readable = poll()
            readable.register(sock, POLLIN)
            if readable.poll(0):  # data, the end of the stream, or an error
                return False
            return time.monotonic() - self.used < self.IDLE or client.noop()[0] == 250
        except (*SMTP_OUTAGES, smtplib.SMTPException, ValueError):
            return False

    def close(self, quit: bool = False) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            _close(client, quit)


class Sender:
    """Sends what is due; `run_once` handles one batch over one connection."""

    def __init__(self, engine: Engine, settings: Settings, stop: threading.Event | None = None,
                 owner: str | None = None):
        self.engine, self.settings = engine, settings
        self.reader = engine.execution_options(readonly=True)
        self.stop = stop or threading.Event()
        self.owner = owner or worker_id()
        # Watches also remember whether the server answered in this run, for the service log.
        self.smtp_outage = Watch("SMTP server")
        self.imap_outage = Watch("IMAP server (Sent folder)")

    def due(self, session: Session) -> list[int]:
        now = utcnow()
        not_yet = or_(Reply.next_attempt_at.is_(None), Reply.next_attempt_at <= now)
        answers = (select(Reply.id).join(Question, Question.id == Reply.question_id)
                   .where(Reply.purpose == "answer", Question.status == Status.APPROVED, not_yet))
        notices = select(Reply.id).where(Reply.purpose == "notice", Reply.to_send, not_yet,
                                         or_(Reply.lease_until.is_(None), Reply.lease_until < now))
        limit = self.settings.send.batch_size
        ids = session.execute(answers.order_by(Reply.id).limit(limit)).scalars().all()
        ids += session.execute(notices.order_by(Reply.id).limit(limit)).scalars().all()
        return ids[:limit]

    def run_until_done(self) -> SendCounts:
        """Batch after batch while batches come back full (more may be due), until a server is
        down or we are told to stop; the counts of them all."""
        total = SendCounts()
        while not self.stop.is_set():
            counts = self.run_once()
            for name in ("sent", "retrying", "failed", "skipped"):
                setattr(total, name, getattr(total, name) + getattr(counts, name))
            down = self.smtp_outage.down or self.imap_outage.down
            if down or counts.sent + counts.retrying + counts.failed + counts.skipped < self.settings.send.batch_size:
                break
        return total

    def run_once(self) -> SendCounts:
        counts = SendCounts()
        with Session(self.reader) as session:
            ids = self.due(session)
        if not ids:
            return counts
        copies = None
        if self.settings.smtp.sent_folder:
            try:
                imap = connect_imap(self.settings.imap)
                copies = SentCopies(SentFolder(imap, self.settings.smtp.sent_folder))
                self.imap_outage.ok()
            except IMAP_OUTAGES as exc:
                self.imap_outage.failed(exc)  # without the folder we cannot promise exactly-once
                return counts
        smtp = Connection(self.settings.smtp)
        try:
            try:
                smtp.ready()  # before the claim: an outage changes nothing
            except (*SMTP_OUTAGES, smtplib.SMTPException) as exc:
                self.smtp_outage.failed(exc)
                return counts
            self.smtp_outage.ok()
            with self.engine.connect() as conn:
                batch = outbox.claim(conn, ids, self.owner, self.settings.send.lease)
                counts.skipped += len(ids) - len(batch)
                _Batch(self, conn, smtp, copies, batch, counts).run()
        finally:
            smtp.close(quit=True)
            if copies is not None:
                copies.close()
        return counts

    def _sent(self, conn: DbConnection, reply: Claimed, counts: SendCounts) -> None:
        outbox.set_reply(conn, reply.id, sent_at=utcnow(), lease_owner=None, lease_until=None, to_send=False,
                   last_error=None)
        if reply.purpose == "answer":
            states.transition(conn, reply.question_id, Status.SENDING, Status.SENT, self.owner,
                              f"accepted by {self.settings.smtp.host}", action="send")
        else:
            states.note(conn, reply.question_id, self.owner, "notice sent", reply.message_id)
        conn.commit()
        counts.sent += 1
        vet.info("question %s: %s sent to %s", reply.question_id, reply.purpose, redact(reply.to_addr))

    def _retry(self, conn: DbConnection, reply: Claimed, why: str, counts: SendCounts) -> None:
        send = self.settings.send
        now = utcnow()
        first = as_utc(reply.first_attempt_at)
        if first and (now - first).total_seconds() > send.give_up_after:
            self._failed(conn, reply, f"gave up after {reply.send_attempts} attempts; last: {why}", counts)
            return
        delay = min(send.backoff_max, send.backoff_first * 2 ** max(0, reply.send_attempts - 1))
        delay *= random.uniform(0.5, 1.0)  # jitter: workers that failed together do not retry together
        outbox.set_reply(conn, reply.id, next_attempt_at=now + timedelta(seconds=delay), lease_owner=None,
                   lease_until=None, last_error=why)
        if reply.purpose == "answer":
            states.transition(conn, reply.question_id, Status.SENDING, Status.APPROVED, self.owner,
                              f"{why}; next try in {delay:.0f}s", action="send")
        else:
            states.note(conn, reply.question_id, self.owner, "notice retry", why)
        conn.commit()
        counts.retrying += 1

    def _failed(self, conn: DbConnection, reply: Claimed, why: str, counts: SendCounts) -> None:
        values = dict(lease_owner=None, lease_until=None, last_error=why, failed_at=utcnow())
        if reply.purpose == "answer":
            outbox.set_reply(conn, reply.id, **values)
            states.transition(conn, reply.question_id, Status.SENDING, Status.FAILED, self.owner, why, action="send")
        else:
            outbox.set_reply(conn, reply.id, to_send=False, **values)
            states.note(conn, reply.question_id, self.owner, "notice failed", why)
        conn.commit()
        counts.failed += 1
        vet.info("question %s: %s failed: %s", reply.question_id, reply.purpose, without_server_text(why))


class _Batch:
    """One claimed batch going out, reply after reply. Work is done while a server answers: the
    next reply's message is built (and its Sent-folder copy put there) while the SMTP server takes
    in the current one's data, and a reply the server took is recorded as sent while it answers
    the next reply's MAIL (before anything else is written, and before that reply can go anywhere:
    as soon as without it). The Sent folder's steps run in their own thread (see sentcopy)."""

    def __init__(self, sender: Sender, conn: DbConnection, smtp: Connection, copies: SentCopies | None,
                 replies: list[Claimed], counts: SendCounts):
        self.sender, self.conn, self.smtp, self.copies = sender, conn, smtp, copies
        self.replies, self.counts = replies, counts
        self.built: dict[int, tuple[bytes, None] | tuple[None, Exception]] = {}
        self.renewed = time.monotonic()
        self.unrecorded: Claimed | None = None  # the server took it; not yet recorded as sent
        self.delivered: Future | None = None  # its copy being marked delivered

    def _record(self) -> None:
        if self.unrecorded is not None:
            reply, self.unrecorded = self.unrecorded, None
            delivered, self.delivered = self.delivered, None
            if delivered is not None:  # the folder hears of it before the database does
                try:
                    delivered.result()
                except IMAP_OUTAGES as exc:  # sent, but the folder does not know: the database does
                    self.sender.imap_outage.failed(exc)
            self.sender._sent(self.conn, reply, self.counts)

    def _unclaim(self, replies: list[Claimed], why: str) -> None:
        """Give back replies not tried (their copies put ahead removed): after recording what went."""
        self._record()
        if self.copies is not None:
            self.copies.discard([r.id for r in replies])
        outbox.unclaim(self.conn, replies, self.sender.owner, why)

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            self._record()  # what the server took must not wait for the sweep, nor go out again
            raise
        self._record()

    def _run(self) -> None:
        sender, waiting = self.sender, list(self.replies)
        while waiting:
            reply = waiting[0]
            if sender.stop.is_set() or time.monotonic() - self.renewed > sender.settings.send.lease / 10:
                self._record()
            if sender.stop.is_set():
                self._unclaim(waiting, "stopped before this reply was sent; will try again")
                return
            if time.monotonic() - self.renewed > sender.settings.send.lease / 10:
                # Each reply starts with most of a lease left. One that ran out while we stalled is
                # no longer ours: the sweep settles it (a copy put ahead included), we leave it be.
                ours = outbox.renew(self.conn, waiting, sender.owner, sender.settings.send.lease)
                self.renewed = time.monotonic()
                self.counts.skipped += len(waiting) - len(ours)
                waiting = [r for r in waiting if r.id in ours]
                continue
            try:
                client = self.smtp.ready()
            except (*SMTP_OUTAGES, smtplib.SMTPException) as exc:
                sender.smtp_outage.failed(exc)  # cannot connect: an outage, nobody's attempt
                self._unclaim(waiting, "server unreachable; will try again")
                return
            if not self._send(client, reply, waiting[1] if len(waiting) > 1 else None):
                self._unclaim(waiting[1:], "server unreachable; will try again")
                return  # the Sent folder is gone: the rest waits for the next run
            waiting.pop(0)

    def _build(self, reply: Claimed | None) -> None:
        """Build a reply's message ahead (a failure is kept for when its turn comes) and, with a
        Sent folder, have its pending copy put there."""
        if reply is not None and reply.id not in self.built:
            try:
                self.built[reply.id] = (flatten(build(reply, self.sender.settings)), None)
            except Exception as exc:
                self.built[reply.id] = (None, exc)
        if reply is not None and self.copies is not None and self.built[reply.id][0] is not None:
            self.copies.put(reply.id, self.built[reply.id][0], reply.message_id)

    def _send(self, smtp: smtplib.SMTP, reply: Claimed, nxt: Claimed | None) -> bool:
        """Send one reply; return False when the Sent folder is lost."""
        sender, conn, counts, copies = self.sender, self.conn, self.counts, self.copies
        self._build(reply)
        data, problem = self.built.pop(reply.id)
        if problem is not None:  # a reply we cannot turn into mail: a person must look
            self._record()
            sender._failed(conn, reply, f"cannot build the message: {problem}", counts)
            return True

        def handed() -> None:  # after MAIL and RCPT, before the data: from here the server may have it
            if copies is not None:
                try:
                    copies.hand(reply.id).result()
                except IMAP_OUTAGES as exc:
                    raise _FolderLost() from exc
        try:
            transmit(smtp, data, sender.settings.service.address, reply.to_addr, handed,
                     while_waiting=lambda: self._build(nxt), while_mail=self._record)
        except _FolderLost as lost:  # nothing was handed to the SMTP server
            self._record()
            sender.imap_outage.failed(lost.__cause__)
            self._unclaim([reply], "server unreachable; will try again")
            return False
        except (smtplib.SMTPException, *SMTP_OUTAGES) as exc:
            self._record()
            code, words = _smtp_code(exc)
            if copies is not None:
                copies.discard([reply.id])
            if (code is not None and 500 <= code < 600) or isinstance(exc, smtplib.SMTPNotSupportedError):
                sender._failed(conn, reply, f"SMTP {code or 'error'}: {words}", counts)
                return True
            if code is None or code == 421:
                # The connection was open (new, or it looked alive) and broke during this reply's
                # own transaction: count the attempt and back off as for a 4xx, so a reply that
                # always drops the connection ends in `failed`, not in a loop. The next reply
                # gets a fresh connection; if none can be had, that is an outage.
                _close(smtp)
            why = (f"SMTP {code}: {words}" if code is not None else
                   f"connection lost during the SMTP transaction ({type(exc).__name__}: {words})")
            sender._retry(conn, reply, why, counts)
            return True
        self.smtp.used = time.monotonic()
        if copies is not None:
            self.delivered = copies.deliver(reply.id)
        self.unrecorded = reply
        return True
