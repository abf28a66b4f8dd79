"""Sweep: release stale review claims, reconcile replies whose sender stopped mid-send, prune old runs,
apply the retention policy."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from . import retention, servicelog, states
from .config import Settings
from .fetch import IMAP_OUTAGES
from .fetch import connect as connect_imap
from .fetch import disconnect
from .logs import OncePerOutage, vet
from .mailout import SentFolder
from .models import Question, Reply, utcnow
from .states import Status

ACTOR = "sweep"


@dataclass
class SweepCounts:
    released: int = 0
    resend: int = 0
    confirmed_sent: int = 0
    unknown: int = 0
    runs_pruned: int = 0
    purged: int = 0  # questions whose mail and bodies the retention policy removed
    logins_pruned: int = 0


class Sweeper:
    def __init__(self, engine: Engine, settings: Settings):
        self.engine, self.settings = engine, settings
        self.imap_outage = OncePerOutage("IMAP server (Sent folder)")

    def run_once(self) -> SweepCounts:
        counts = SweepCounts()
        self.release_stale_claims(counts)
        self.reconcile(counts)
        self.prune_service_log(counts)
        self.apply_retention(counts)
        return counts

    def apply_retention(self, counts: SweepCounts) -> None:
        """privacy.keep_mail_days and keep_logins_days (see retention.py)."""
        with Session(self.engine) as session:
            purged = retention.purge(session, self.settings.privacy)
            session.commit()
        counts.purged, counts.logins_pruned = purged.questions, purged.logins
        if purged.questions:
            vet.info("retention: purged the mail and bodies of %s questions", purged.questions)

    def prune_service_log(self, counts: SweepCounts) -> None:
        """Keep the service log bounded: runs older than servicelog.KEEP_DAYS go."""
        with Session(self.engine) as session:
            counts.runs_pruned = servicelog.prune(session, utcnow())
            session.commit()

    def release_stale_claims(self, counts: SweepCounts) -> None:
        """in_review -> drafted for claims whose lease ran out."""
        now = utcnow()
        with Session(self.engine) as session:
            stale = session.execute(select(Question.id, Question.claimed_by).where(
                Question.status == Status.IN_REVIEW, Question.claimed_until < now)).all()
            for qid, who in stale:
                if states.transition(session, qid, Status.IN_REVIEW, Status.DRAFTED, ACTOR,
                                     f"claim of {who} expired", action="release",
                                     claimed_by=None, claimed_until=None):
                    counts.released += 1
            session.commit()

    def _stale_replies(self, session: Session) -> list[Reply]:
        now = utcnow()
        answers = select(Reply).join(Question, Question.id == Reply.question_id).where(
            Reply.purpose == "answer", Question.status == Status.SENDING,
            (Reply.lease_until.is_(None)) | (Reply.lease_until < now))
        notices = select(Reply).where(and_(Reply.purpose == "notice", Reply.to_send,
                                           Reply.lease_owner.is_not(None), Reply.lease_until < now))
        return list(session.execute(answers).scalars()) + list(session.execute(notices).scalars())

    def reconcile(self, counts: SweepCounts) -> None:
        """A reply left in `sending` by a worker that died: was it accepted before the crash?

        With a Sent folder the copy tells: none, or pending only (it never reached the SMTP
        server; the copy is removed) -> send again; marked delivered -> sent; handed but not
        delivered -> the server may have taken it, so it goes to `failed` for a person to check
        rather than risk a second copy. Without a Sent folder: send again (at-least-once, same
        Message-ID).
        """
        with Session(self.engine) as session:
            stale = self._stale_replies(session)
            if not stale:
                return
            folder = None
            if self.settings.smtp.sent_folder:
                try:
                    folder = SentFolder(connect_imap(self.settings.imap), self.settings.smtp.sent_folder)
                    self.imap_outage.ok()
                except IMAP_OUTAGES as exc:
                    self.imap_outage.failed(exc)  # cannot tell: leave them until the folder answers
                    return
            try:
                for reply in stale:
                    uid, state = folder.find(reply.message_id) if folder else (None, "none")
                    if state == "pending":  # certainly not sent: the copy must not say otherwise
                        folder.discard(uid)
                    self._settle(session, reply, state, counts)
                    session.commit()
            except IMAP_OUTAGES as exc:
                self.imap_outage.failed(exc)
            finally:
                if folder is not None:
                    disconnect(folder.client)

    def _settle(self, session, reply: Reply, state: str, counts) -> None:
        reply.lease_owner = reply.lease_until = None
        answer = reply.purpose == "answer"
        if state == "delivered":
            reply.sent_at, reply.to_send = utcnow(), False
            if answer:
                states.transition(session, reply.question_id, Status.SENDING, Status.SENT, ACTOR,
                                  "found delivered in the Sent folder after a crash", action="reconcile")
            counts.confirmed_sent += 1
        elif state == "handed":
            why = ("the sender stopped while this reply was with the SMTP server; it may have reached "
                   "the asker. Check, then `consultant retry` to send it again")
            reply.last_error, reply.failed_at = why, utcnow()
            if answer:
                states.transition(session, reply.question_id, Status.SENDING, Status.FAILED, ACTOR, why,
                                  action="reconcile")
            else:
                reply.to_send = False
                states.note(session, reply.question_id, ACTOR, "notice unknown", why)
            counts.unknown += 1
        else:
            if answer:
                states.transition(session, reply.question_id, Status.SENDING, Status.APPROVED, ACTOR,
                                  "the sender stopped before the reply was sent; sending again",
                                  action="reconcile")
            counts.resend += 1
        vet.info("question %s: reconciled %s after a stopped sender", reply.question_id, reply.purpose)
