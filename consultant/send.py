"""Send: approved -> sending -> sent, with a lease per reply, backoff on 4xx, failed on 5xx.

One SMTP connection serves a batch (checked with NOOP before it is reused, reopened if the server
dropped it). An outage (no connection can be opened) changes no state and is logged once; a reply
whose own transaction fails (4xx, or the connection lost after MAIL began) counts an attempt and
backs off until send.give_up_after. With smtp.sent_folder set, each reply is put in that IMAP
folder as pending, marked handed just before the message data goes to the server (after MAIL and
RCPT) and delivered once the server accepted it, so after a crash a reply that never reached the
server is sent again and one that may have is never resent blindly (see sweep.reconcile). Without
it, sending is at-least-once with the same Message-ID.
"""
from __future__ import annotations

import os
import random
import smtplib
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta

from imapclient.exceptions import IMAPClientError
from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from . import states
from .config import Settings, Smtp
from .fetch import IMAP_OUTAGES
from .fetch import connect as connect_imap
from .fetch import disconnect
from .logs import error, redact, vet, without_server_text
from .mailout import SMTP_OUTAGES, SentFolder, build, connect_smtp, transmit
from .models import Question, Reply, utcnow
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
    """The SMTP session a batch shares: opened on first use, checked with NOOP before each reuse,
    reopened when the server has dropped it. Connecting raises (an outage) and changes nothing."""

    def __init__(self, smtp: Smtp):
        self.smtp = smtp
        self.client: smtplib.SMTP | None = None

    def ready(self) -> smtplib.SMTP:
        if self.client is not None:
            try:
                if self.client.noop()[0] == 250:
                    return self.client
            except (*SMTP_OUTAGES, smtplib.SMTPException):
                pass
            self.close()
        self.client = connect_smtp(self.smtp)
        return self.client

    def close(self, quit: bool = False) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            _close(client, quit)


class Sender:
    """Sends what is due; `run_once` handles one batch over one connection."""

    def __init__(self, engine: Engine, settings: Settings, stop: threading.Event | None = None,
                 owner: str | None = None):
        self.engine, self.settings = engine, settings
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
        with Session(self.engine) as session:
            ids = self.due(session)
        if not ids:
            return counts
        sent_folder = None
        if self.settings.smtp.sent_folder:
            try:
                imap = connect_imap(self.settings.imap)
                sent_folder = SentFolder(imap, self.settings.smtp.sent_folder)
                self.imap_outage.ok()
            except IMAP_OUTAGES as exc:
                self.imap_outage.failed(exc)  # without the folder we cannot promise exactly-once
                return counts
        smtp = Connection(self.settings.smtp)
        try:
            for reply_id in ids:
                if self.stop.is_set():
                    break
                try:
                    client = smtp.ready()
                except (*SMTP_OUTAGES, smtplib.SMTPException) as exc:
                    self.smtp_outage.failed(exc)  # cannot connect: an outage, nobody's attempt
                    break
                self.smtp_outage.ok()
                if not self._send_one(client, sent_folder, reply_id, counts):
                    break  # the Sent folder is gone: the rest waits for the next run
        finally:
            smtp.close(quit=True)
            self._logout(sent_folder)
        return counts

    @staticmethod
    def _logout(sent_folder: SentFolder | None) -> None:
        if sent_folder is not None:
            disconnect(sent_folder.client)

    def _claim(self, session: Session, reply: Reply) -> bool:
        """Take the lease on one reply (and move an answer to sending) in one transaction."""
        now = utcnow()
        lease = dict(lease_owner=self.owner, lease_until=now + timedelta(seconds=self.settings.send.lease))
        if reply.purpose == "answer":
            if not states.transition(session, reply.question_id, Status.APPROVED, Status.SENDING, self.owner,
                                     f"attempt {reply.send_attempts + 1}", action="send"):
                return False
        else:
            taken = session.execute(update(Reply).where(
                Reply.id == reply.id, Reply.sent_at.is_(None), Reply.to_send,
                or_(Reply.lease_until.is_(None), Reply.lease_until < now)).values(**lease)
                .execution_options(synchronize_session=False))
            if taken.rowcount != 1:
                return False
        session.execute(update(Reply).where(Reply.id == reply.id).values(
            **lease, send_attempts=Reply.send_attempts + 1, first_attempt_at=reply.first_attempt_at or now)
            .execution_options(synchronize_session=False))
        session.commit()
        return True

    def _send_one(self, smtp, sent_folder: SentFolder | None, reply_id: int, counts: SendCounts) -> bool:
        """Send one reply; return False when the connection is lost."""
        with Session(self.engine) as session:
            reply = session.get(Reply, reply_id)
            if reply is None or not self._claim(session, reply):
                counts.skipped += 1
                return True
            session.refresh(reply)
            try:
                msg = build(reply, self.settings)
            except Exception as exc:  # a reply we cannot turn into mail: a person must look
                self._failed(session, reply, f"cannot build the message: {exc}", counts)
                return True
            copy_uid = None
            if sent_folder is not None:
                try:
                    copy_uid = sent_folder.put_pending(msg)
                    if copy_uid is None:  # a copy we cannot flag could not tell how far the reply got
                        raise IMAPClientError("the copy just put in the Sent folder cannot be found")
                except IMAP_OUTAGES as exc:
                    self.imap_outage.failed(exc)
                    self._unclaim(session, reply)
                    return False

            def handed() -> None:  # after MAIL and RCPT, before the data: from here the server may have it
                if sent_folder is not None:
                    try:
                        sent_folder.mark_handed(copy_uid)
                    except IMAP_OUTAGES as exc:
                        raise _FolderLost() from exc
            try:
                transmit(smtp, msg, self.settings.service.address, reply.to_addr, handed)
            except _FolderLost as lost:  # nothing was handed to the SMTP server
                self.imap_outage.failed(lost.__cause__)
                self._discard(sent_folder, copy_uid)
                self._unclaim(session, reply)
                return False
            except (smtplib.SMTPException, *SMTP_OUTAGES) as exc:
                code, words = _smtp_code(exc)
                self._discard(sent_folder, copy_uid)
                if (code is not None and 500 <= code < 600) or isinstance(exc, smtplib.SMTPNotSupportedError):
                    self._failed(session, reply, f"SMTP {code or 'error'}: {words}", counts)
                    return True
                if code is None or code == 421:
                    # The connection was open (new, or it answered NOOP) and broke during this
                    # reply's own transaction: count the attempt and back off as for a 4xx, so a
                    # reply that always drops the connection ends in `failed`, not in a loop.
                    # The next reply gets a fresh connection; if none can be had, that is an outage.
                    _close(smtp)
                why = (f"SMTP {code}: {words}" if code is not None else
                       f"connection lost during the SMTP transaction ({type(exc).__name__}: {words})")
                self._retry(session, reply, why, counts)
                return True
            if sent_folder is not None and copy_uid is not None:
                try:
                    sent_folder.mark_delivered(copy_uid)
                except IMAP_OUTAGES as exc:  # sent, but the folder does not know: the DB does
                    self.imap_outage.failed(exc)
            self._sent(session, reply, counts)
            return True

    def _discard(self, sent_folder: SentFolder | None, uid: int | None) -> None:
        if sent_folder is not None and uid is not None:
            try:
                sent_folder.discard(uid)
            except Exception as exc:
                error.warning("could not remove the unsent copy %s from the Sent folder: %s", uid, exc)

    def _sent(self, session: Session, reply: Reply, counts: SendCounts) -> None:
        now = utcnow()
        reply.sent_at, reply.lease_owner, reply.lease_until, reply.to_send = now, None, None, False
        reply.last_error = None
        if reply.purpose == "answer":
            states.transition(session, reply.question_id, Status.SENDING, Status.SENT, self.owner,
                              f"accepted by {self.settings.smtp.host}", action="send")
        else:
            states.note(session, reply.question_id, self.owner, "notice sent", reply.message_id)
        session.commit()
        counts.sent += 1
        vet.info("question %s: %s sent to %s", reply.question_id, reply.purpose, redact(reply.to_addr))

    def _unclaim(self, session: Session, reply: Reply) -> None:
        """The Sent folder is unreachable before the reply went out: put it back as it was,
        without counting the attempt against it."""
        reply.lease_owner = reply.lease_until = None
        reply.send_attempts = max(0, reply.send_attempts - 1)
        if reply.purpose == "answer":
            states.transition(session, reply.question_id, Status.SENDING, Status.APPROVED, self.owner,
                              "server unreachable; will try again", action="send")
        session.commit()

    def _retry(self, session: Session, reply: Reply, why: str, counts: SendCounts) -> None:
        send = self.settings.send
        now = utcnow()
        if reply.first_attempt_at and (now - reply.first_attempt_at).total_seconds() > send.give_up_after:
            self._failed(session, reply, f"gave up after {reply.send_attempts} attempts; last: {why}", counts)
            return
        delay = min(send.backoff_max, send.backoff_first * 2 ** max(0, reply.send_attempts - 1))
        delay *= random.uniform(0.5, 1.0)  # jitter: workers that failed together do not retry together
        reply.next_attempt_at = now + timedelta(seconds=delay)
        reply.lease_owner = reply.lease_until = None
        reply.last_error = why
        if reply.purpose == "answer":
            states.transition(session, reply.question_id, Status.SENDING, Status.APPROVED, self.owner,
                              f"{why}; next try in {delay:.0f}s", action="send")
        else:
            states.note(session, reply.question_id, self.owner, "notice retry", why)
        session.commit()
        counts.retrying += 1

    def _failed(self, session: Session, reply: Reply, why: str, counts: SendCounts) -> None:
        reply.lease_owner = reply.lease_until = None
        reply.last_error, reply.failed_at = why, utcnow()
        if reply.purpose == "answer":
            states.transition(session, reply.question_id, Status.SENDING, Status.FAILED, self.owner, why,
                              action="send")
        else:
            reply.to_send = False
            states.note(session, reply.question_id, self.owner, "notice failed", why)
        session.commit()
        counts.failed += 1
        vet.info("question %s: %s failed: %s", reply.question_id, reply.purpose, without_server_text(why))

