"""Retention: after privacy.keep_mail_days, purge the mail and bodies of finished questions; after
privacy.keep_logins_days, delete login records. The question rows (status, dates, sender, codes
found) and every audit event stay; each purge is itself an audit event. The sweep runs this.

Only questions nothing will touch again are purged: sent, rejected (once any notice to the asker
is out) and ignored. Quarantined and failed questions wait for an operator, who may replay them
from the raw mail, so they are kept until they are resolved.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, insert, select, update
from sqlmodel import Session

from .accounts import LoginEvent
from .config import Privacy
from .models import Event, Question, RawMessage, Reply, utcnow
from .states import Status

ACTOR = "retention"
PURGEABLE = (Status.SENT, Status.REJECTED, Status.IGNORED)
BATCH = 500


@dataclass
class Purged:
    questions: int = 0
    logins: int = 0


def reason(days: int) -> str:
    return f"body purged after {days} days by the retention policy"


def purge(session: Session, privacy: Privacy, now: datetime | None = None) -> Purged:
    """Apply both retention settings (0 keeps forever); the caller commits."""
    now = now or utcnow()
    return Purged(questions=purge_mail(session, privacy.keep_mail_days, now),
                  logins=purge_logins(session, privacy.keep_logins_days, now))


def due(days: int, now: datetime, limit: int = BATCH):
    """The ids of finished, unpurged questions last changed more than `days` ago."""
    notice_pending = exists().where(Reply.question_id == Question.id, Reply.to_send.is_(True))
    return (select(Question.id)
            .where(Question.status.in_([s.value for s in PURGEABLE]), Question.purged_at.is_(None),
                   Question.updated_at < now - timedelta(days=days), ~notice_pending)
            .order_by(Question.id).limit(limit))


def purge_mail(session: Session, days: int, now: datetime) -> int:
    """Delete the raw mail and blank the bodies, subjects, drafts and attachment names of the
    questions due; keep everything else. Runs in batches; returns how many were purged."""
    if days <= 0:
        return 0
    total = 0
    while True:
        ids = list(session.execute(due(days, now)).scalars())
        if not ids:
            return total
        session.execute(delete(RawMessage).where(RawMessage.question_id.in_(ids)))
        for qid, attachments in session.execute(
                select(Question.id, Question.attachments).where(Question.id.in_(ids))).all():
            # File names may name the patient; the type and size tell an auditor enough.
            kept = [dict(filename=None, content_type=a.get("content_type"), size=a.get("size"))
                    for a in attachments or []]
            session.execute(update(Question).where(Question.id == qid, Question.purged_at.is_(None))
                            .values(subject=None, new_text=None, quoted_text=None, signature=None,
                                    attachments=kept, purged_at=now)
                            .execution_options(synchronize_session=False))
        session.execute(update(Reply).where(Reply.question_id.in_(ids))
                        .values(subject="", text="", html="", edited_text=None)
                        .execution_options(synchronize_session=False))
        session.execute(insert(Event), [dict(question_id=qid, at=now, actor=ACTOR, action="purged",
                                             reason=reason(days)) for qid in ids])
        total += len(ids)


def purge_logins(session: Session, days: int, now: datetime) -> int:
    """Delete login records older than `days`; returns how many went."""
    if days <= 0:
        return 0
    result = session.execute(delete(LoginEvent).where(LoginEvent.at < now - timedelta(days=days))
                             .execution_options(synchronize_session=False))
    return result.rowcount or 0
