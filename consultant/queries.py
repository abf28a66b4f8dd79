"""Read-side queries shared by the CLI and the web desk: the queue, one question, counts."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session

from .errors import NotFound
from .models import Event, Question, RawMessage, Reply, utcnow
from .states import WAITING, Status


@dataclass
class QueueRow:
    id: int
    status: str
    received_at: datetime
    from_addr: str | None
    subject: str | None
    codes: list[str]
    claimed_by: str | None
    reason: str | None

    def as_json(self) -> dict:
        return dict(id=self.id, status=self.status, received_at=self.received_at.isoformat(),
                    from_addr=self.from_addr, subject=self.subject, codes=self.codes,
                    claimed_by=self.claimed_by, reason=self.reason)


def queue(session: Session, status: str | None = None, limit: int = 50, after_id: int = 0) -> list[QueueRow]:
    """Questions oldest first; by default those waiting for a reviewer."""
    statuses = [Status(status).value] if status else [s.value for s in WAITING]
    rows = session.execute(
        select(Question.id, Question.status, Question.received_at, Question.from_addr,
               Question.subject, Question.codes, Question.claimed_by, Question.reason)
        .where(Question.status.in_(statuses), Question.id > after_id)
        .order_by(Question.id).limit(limit)).all()
    return [QueueRow(r.id, r.status, r.received_at, r.from_addr, r.subject,
                     [c["code"] for c in (r.codes or []) if not c.get("quoted")], r.claimed_by, r.reason)
            for r in rows]


def counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Question.status, func.count(Question.id)).group_by(Question.status)).all()
    found = dict(rows)
    return {s.value: found.get(s.value, 0) for s in Status}


def oldest_waiting(session: Session) -> datetime | None:
    return session.execute(select(func.min(Question.received_at))
                           .where(Question.status.in_([s.value for s in WAITING]))).scalar_one()


def age(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "-"
    seconds = int(((now or utcnow()) - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def get(session: Session, question_id: int) -> Question:
    question = session.get(Question, question_id)
    if question is None:
        raise NotFound(f"no question with id {question_id}")
    return question


def reply(session: Session, question_id: int, purpose: str = "answer") -> Reply | None:
    return session.execute(select(Reply).where(Reply.question_id == question_id,
                                               Reply.purpose == purpose)).scalar_one_or_none()


def _reply_json(r: Reply | None) -> dict | None:
    if r is None:
        return None
    return dict(kind=r.kind, to=r.to_addr, subject=r.subject, text=r.text, html=r.html,
                edited_text=r.edited_text, edited_by=r.edited_by, message_id=r.message_id,
                in_reply_to=r.in_reply_to, references=r.references, send_attempts=r.send_attempts,
                sent_at=r.sent_at.isoformat() if r.sent_at else None, last_error=r.last_error)


def detail(session: Session, question_id: int) -> dict:
    """Everything about one question, as plain data (the CLI prints it, --json dumps it)."""
    q = get(session, question_id)
    events = session.execute(select(Event).where(Event.question_id == question_id).order_by(Event.id)).scalars()
    return dict(
        id=q.id, status=q.status, stage=q.stage, reason=q.reason, attempts=q.attempts,
        received_at=q.received_at.isoformat(), message_id=q.message_id, size=q.size,
        source=dict(account=q.account, mailbox=q.mailbox, uidvalidity=q.uidvalidity, uid=q.uid),
        from_name=q.from_name, from_addr=q.from_addr, subject=q.subject,
        sent_date=q.sent_date.isoformat() if q.sent_date else None, body_source=q.body_source,
        body_downloaded=q.body_downloaded, new_text=q.new_text, quoted_text=q.quoted_text,
        signature=q.signature, attachments=q.attachments or [], defects=q.defects or [],
        codes=q.codes or [], modifiers=q.modifiers or [], claimed_by=q.claimed_by,
        analysis=q.analysis or {},
        claimed_until=q.claimed_until.isoformat() if q.claimed_until else None,
        reply=_reply_json(reply(session, question_id)),
        notice=_reply_json(reply(session, question_id, "notice")),
        events=[dict(at=e.at.isoformat(), actor=e.actor, action=e.action, from_status=e.from_status,
                     to_status=e.to_status, reason=e.reason) for e in events],
    )


def raw(session: Session, question_id: int) -> bytes:
    get(session, question_id)
    row = session.get(RawMessage, question_id)
    if row is None:
        raise NotFound(f"question {question_id} has no stored message (purged by retention?)")
    return row.raw
