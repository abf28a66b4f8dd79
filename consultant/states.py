"""The one owner of a question's status: the transition table and compare-and-swap updates."""
from __future__ import annotations

from enum import StrEnum

from sqlalchemy import bindparam, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from .models import Event, Question, utcnow


class Status(StrEnum):
    RECEIVED = "received"
    IGNORED = "ignored"
    PARSED = "parsed"
    DRAFTED = "drafted"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    SENDING = "sending"
    SENT = "sent"
    REJECTED = "rejected"
    QUARANTINED = "quarantined"
    FAILED = "failed"


S = Status
# Every allowed move; anything not listed is refused.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.RECEIVED: frozenset({S.IGNORED, S.PARSED, S.QUARANTINED}),
    S.PARSED: frozenset({S.DRAFTED, S.QUARANTINED}),
    S.DRAFTED: frozenset({S.IN_REVIEW, S.QUARANTINED}),
    S.IN_REVIEW: frozenset({S.DRAFTED, S.APPROVED, S.REJECTED}),
    S.APPROVED: frozenset({S.SENDING, S.IN_REVIEW}),
    S.SENDING: frozenset({S.SENT, S.APPROVED, S.FAILED}),
    S.FAILED: frozenset({S.APPROVED}),
    S.QUARANTINED: frozenset({S.RECEIVED, S.PARSED}),
    S.IGNORED: frozenset(),
    S.SENT: frozenset(),
    S.REJECTED: frozenset(),
}
# Waiting for a person, in the order reviewers care about.
WAITING = (S.DRAFTED, S.IN_REVIEW)
FINAL = tuple(s for s, targets in TRANSITIONS.items() if not targets)


class IllegalTransition(ValueError):
    """The table does not allow this move: a bug in the caller, never a race."""


def allowed(frm: Status | str, to: Status | str) -> bool:
    return Status(to) in TRANSITIONS[Status(frm)]


def transition(session: Session, question_id: int, expected: Status | str, to: Status | str,
               actor: str, reason: str | None = None, action: str = "transition", **fields) -> bool:
    """Move one question from `expected` to `to`; return False if someone else moved it first.

    The UPDATE only matches while the status is still `expected` (compare-and-swap), and the
    audit Event is written in the same transaction; the caller commits. `fields` are other
    columns to set in the same UPDATE. Raises IllegalTransition for a move the table forbids.
    """
    expected, to = Status(expected), Status(to)
    if to not in TRANSITIONS[expected]:
        raise IllegalTransition(f"{expected} -> {to} is not allowed")
    now = utcnow()
    values = dict(fields, status=to.value, updated_at=now)
    if reason is not None and to in (S.IGNORED, S.QUARANTINED, S.FAILED, S.REJECTED):
        values["reason"] = reason
    params = {f"v_{name}": value for name, value in values.items()}
    result = session.execute(_update_for(tuple(sorted(values))),
                             dict(params, w_id=question_id, w_status=expected.value))
    if result.rowcount != 1:
        return False
    session.execute(_EVENT, dict(question_id=question_id, at=now, actor=actor, action=action,
                                 from_status=expected.value, to_status=to.value, reason=reason))
    return True


# Built once and reused with new parameters: building a statement (and its cache key) again for
# every question costs more than running it.
_EVENT = insert(Event)
_UPDATES: dict[tuple[str, ...], object] = {}


def _update_for(names: tuple[str, ...]):
    """The compare-and-swap UPDATE setting these columns, parameters w_id, w_status and v_<column>."""
    stmt = _UPDATES.get(names)
    if stmt is None:
        columns = Question.__table__.c
        stmt = (update(Question)
                .where(Question.id == bindparam("w_id"), Question.status == bindparam("w_status"))
                .values({name: bindparam(f"v_{name}", type_=columns[name].type) for name in names})
                .execution_options(synchronize_session=False))
        if len(_UPDATES) < 256:  # the callers use a handful of column sets
            _UPDATES[names] = stmt
    return stmt


def note(session: Session, question_id: int, actor: str, action: str, reason: str | None = None) -> None:
    """An audit event that changes no status (an edit, a failed send attempt, a requeue refusal)."""
    session.execute(_EVENT, dict(question_id=question_id, at=utcnow(), actor=actor, action=action,
                                 from_status=None, to_status=None, reason=reason))


def create(session: Session, actor: str, **fields) -> int | None:
    """Store a new question as received; return its id, or None if its dedupe key exists already.

    INSERT ... ON CONFLICT DO NOTHING keeps a re-delivered message (same Message-ID) stored once,
    even with several workers racing.
    """
    now = utcnow()
    values = dict(fields, status=S.RECEIVED.value, received_at=now, updated_at=now)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(Question).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(Question).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(dialect)
    result = session.execute(stmt.returning(Question.id))
    row = result.first()
    if row is None:
        return None
    session.execute(_EVENT, dict(question_id=row[0], at=now, actor=actor, action="transition",
                                 from_status=None, to_status=S.RECEIVED.value, reason=fields.get("reason")))
    return row[0]
