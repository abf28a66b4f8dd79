"""The one owner of a question's status: the transition table and compare-and-swap updates."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlmodel import Session

from .db import execute_many, insert_returning
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


def transition(session: Session | Connection, question_id: int, expected: Status | str, to: Status | str,
               actor: str, reason: str | None = None, action: str = "transition", **fields) -> bool:
    """Move one question from `expected` to `to`; return False if someone else moved it first.

    The UPDATE only matches while the status is still `expected` (compare-and-swap), and the
    audit Event is written in the same transaction; the caller commits. `fields` are other
    columns to set in the same UPDATE. Raises IllegalTransition for a move the table forbids.
    A Core Connection does as well as a Session (the sender commits reply by reply on one).
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


@dataclass
class Move:
    """One question's moves for transition_many: from `expected` through each (status, reason) of
    `steps` in turn, setting `fields` (other columns) with the last."""

    question_id: int
    expected: Status
    steps: tuple[tuple[Status, str | None], ...]
    fields: dict = field(default_factory=dict)


_REASONED = frozenset({S.IGNORED, S.QUARANTINED, S.FAILED, S.REJECTED})  # moves that keep a reason
_CHAINS: dict[tuple, tuple] = {}


def _chain(expected: Status | str, steps) -> tuple[str, str | None, tuple[tuple[str, str], ...], bool]:
    """A move's statuses checked against the table: (expected, final, (from, to) of each step,
    whether the final status keeps a reason); kept, since the worker makes the same few moves."""
    key = (expected, *(to for to, _reason in steps))
    chain = _CHAINS.get(key)
    if chain is None:
        frm, pairs = Status(expected), []
        for to in map(Status, key[1:]):
            if to not in TRANSITIONS[frm]:
                raise IllegalTransition(f"{frm} -> {to} is not allowed")
            pairs.append((frm.value, to.value))
            frm = to
        chain = (Status(expected).value, frm.value if pairs else None, tuple(pairs), frm in _REASONED)
        if len(_CHAINS) < 1024:
            _CHAINS[key] = chain
    return chain


_CURRENT = select(Question.id, Question.status).where(Question.id.in_(bindparam("ids", expanding=True)))
_CURRENT_LOCKED = _CURRENT.with_for_update()


def transition_many(session: Session, moves: list[Move], actor: str) -> set[int]:
    """Make many questions' moves at once; return the ids moved. A question no longer at its
    `expected` status (someone else moved it first) is left alone.

    The rows are read first (locked FOR UPDATE on PostgreSQL; on SQLite the transaction holds the
    write lock from its BEGIN IMMEDIATE), then one UPDATE per set of columns and one INSERT of
    every step's audit Event run as executemany: far cheaper per question than `transition`,
    with the same outcome. Raises IllegalTransition, before writing anything, for a step the
    table forbids. The caller commits.
    """
    chains = [_chain(move.expected, move.steps) for move in moves]  # all checked before writing
    if not moves:
        return set()
    read = _CURRENT_LOCKED if session.get_bind().dialect.name == "postgresql" else _CURRENT
    connection = session.connection()
    current = dict(connection.execute(read, dict(ids=[m.question_id for m in moves])).all())
    now = utcnow()
    updates: dict[tuple[str, ...], list[dict]] = {}
    events, moved = [], set()
    for move, (expected, final, pairs, reasoned) in zip(moves, chains):
        qid = move.question_id
        if current.get(qid) != expected or qid in moved:
            continue
        reason = move.steps[-1][1]
        values = dict(move.fields, status=final, updated_at=now)
        if reason is not None and reasoned:
            values["reason"] = reason
        params = {"v_" + name: value for name, value in values.items()}
        params["w_id"], params["w_status"] = qid, expected
        updates.setdefault(tuple(sorted(values)), []).append(params)
        for (frm, to), (_to, why) in zip(pairs, move.steps):
            events.append({"question_id": qid, "at": now, "actor": actor, "action": "transition",
                           "from_status": frm, "to_status": to, "reason": why})
        moved.add(qid)
    for names, rows in updates.items():
        execute_many(connection, _update_for(names), rows)
    execute_many(connection, _EVENT, events)
    return moved


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


def note(session: Session | Connection, question_id: int, actor: str, action: str, reason: str | None = None) -> None:
    """An audit event that changes no status (an edit, a failed send attempt, a requeue refusal)."""
    session.execute(_EVENT, dict(question_id=question_id, at=utcnow(), actor=actor, action=action,
                                 from_status=None, to_status=None, reason=reason))


_CREATE: dict[str, object] = {}


def _create_statement(session: Session):
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id, dedupe_key for question, in the session's
    SQL dialect, built once: run with a list of rows, SQLAlchemy sends them as multi-row INSERTs."""
    dialect = session.get_bind().dialect.name
    if dialect not in _CREATE:
        if dialect == "postgresql":
            from sqlalchemy.dialects import postgresql  # not imported on SQLite

            stmt = postgresql.insert(Question)
        elif dialect == "sqlite":
            stmt = sqlite.insert(Question)
        else:  # pragma: no cover - only SQLite and PostgreSQL are supported
            raise NotImplementedError(dialect)
        _CREATE[dialect] = stmt.on_conflict_do_nothing().returning(Question.id, Question.dedupe_key)
    return _CREATE[dialect]


def create(session: Session, actor: str, **fields) -> int | None:
    """Store a new question as received; return its id, or None if its dedupe key exists already.

    INSERT ... ON CONFLICT DO NOTHING keeps a re-delivered message (same Message-ID) stored once,
    even with several workers racing.
    """
    return create_many(session, actor, [fields]).get(fields["dedupe_key"])


def create_many(session: Session, actor: str, rows: list[dict]) -> dict[str, int]:
    """Store new questions as received, with multi-row INSERTs; return {dedupe_key: id} of
    those stored. A row whose key (or IMAP uid) is stored already, or repeats an earlier row of the
    same call, is left out: each message is stored once, the first time it is seen. Every row
    must have the same fields; `arrived_at` (the server's arrival time) defaults to now."""
    now = utcnow()
    values = [dict(row, status=S.RECEIVED.value, received_at=now, updated_at=now,
                   arrived_at=row.get("arrived_at") or now) for row in rows]
    if not values:
        return {}
    connection = session.connection()
    stored = {key: qid for qid, key in insert_returning(connection, _create_statement(session), values)}
    execute_many(connection, _EVENT, [dict(question_id=qid, at=now, actor=actor, action="transition", from_status=None,
                                           to_status=S.RECEIVED.value, reason=None) for qid in stored.values()])
    return stored
