"""The sender's database side: claim a batch of replies, keep their leases, give back what was not
tried, and the small writes each outcome makes. Core statements built once, on one connection.

A claim is one transaction for the whole batch: each answer's question approved -> sending
(compare-and-swap, so of two workers only one gets it), each reply leased to its sender with the
attempt counted, an audit event per answer. The caller commits each outcome as soon as the SMTP
server answered; nothing here holds a transaction across network I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from . import states
from .models import Event, Question, Reply, utcnow
from .states import Status


@dataclass
class Claimed:
    """A reply as its claim left it (attempt counted): what build() reads and the outcome needs."""
    id: int
    question_id: int
    purpose: str
    to_addr: str
    subject: str
    message_id: str
    in_reply_to: str | None
    references: str | None
    text: str
    html: str
    edited_text: str | None
    send_attempts: int
    first_attempt_at: datetime | None


# Statements built once (a statement and its cache key cost more to build than to run).
_R, _Q, _E = Reply.__table__, Question.__table__, Event.__table__
_IDS = bindparam("b_ids", expanding=True)
_NOW = bindparam("b_now", type_=_R.c.lease_until.type)
_UNTIL = bindparam("b_until", type_=_R.c.lease_until.type)
_OWNER = bindparam("b_owner", type_=_R.c.lease_owner.type)
_LEASE = dict(lease_owner=_OWNER, lease_until=_UNTIL, send_attempts=_R.c.send_attempts + 1,
              first_attempt_at=func.coalesce(_R.c.first_attempt_at, _NOW))
_CLAIMED = [_R.c[name] for name in Claimed.__dataclass_fields__]
_KINDS = select(_R.c.id, _R.c.question_id, _R.c.purpose).where(_R.c.id.in_(_IDS))
_TAKE_QUESTIONS = (update(_Q).where(_Q.c.id.in_(_IDS), _Q.c.status == Status.APPROVED.value)
                   .values(status=Status.SENDING.value, updated_at=_NOW).returning(_Q.c.id))
_LEASE_ANSWERS = update(_R).where(_R.c.id.in_(_IDS)).values(_LEASE).returning(*_CLAIMED)
_LEASE_NOTICES = (update(_R).where(_R.c.id.in_(_IDS), _R.c.sent_at.is_(None), _R.c.to_send,
                                   or_(_R.c.lease_until.is_(None), _R.c.lease_until < _NOW))
                  .values(_LEASE).returning(*_CLAIMED))
_RENEW = (update(_R).where(_R.c.id.in_(_IDS), _R.c.lease_owner == _OWNER, _R.c.lease_until >= _NOW)
          .values(lease_until=_UNTIL).returning(_R.c.id))
_UNCLAIM = (update(_R).where(_R.c.id == bindparam("w_id"), _R.c.lease_owner == _OWNER)
            .values(lease_owner=None, lease_until=None, send_attempts=bindparam("v_attempts")))
_EVENT = insert(_E)
_REPLY_SETS: dict[tuple[str, ...], object] = {}


def set_reply(conn: Connection, reply_id: int, **values) -> None:
    """UPDATE reply SET <values> for one reply (the statement for each set of columns built once)."""
    names = tuple(sorted(values))
    stmt = _REPLY_SETS.get(names)
    if stmt is None:
        stmt = _REPLY_SETS[names] = update(_R).where(_R.c.id == bindparam("w_id")).values(
            {name: bindparam(f"v_{name}", type_=_R.c[name].type) for name in names})
    conn.execute(stmt, {"w_id": reply_id, **{f"v_{name}": value for name, value in values.items()}})


def _event(question_id: int, actor: str, action: str, reason: str | None, frm=None, to=None) -> dict:
    return dict(question_id=question_id, at=utcnow(), actor=actor, action=action,
                from_status=frm, to_status=to, reason=reason)


def claim(conn: Connection, ids: list[int], owner: str, lease: float) -> list[Claimed]:
    """Take the lease on these replies (and move their answers to sending) in one transaction,
    committed; those someone else took first are left out. In id order."""
    now = utcnow()
    rows = conn.execute(_KINDS, dict(b_ids=ids)).all()
    answers = {qid: rid for rid, qid, purpose in rows if purpose == "answer"}
    notices = [rid for rid, _, purpose in rows if purpose != "answer"]
    leased = dict(b_now=now, b_owner=owner, b_until=now + timedelta(seconds=lease))
    claimed: list[Claimed] = []
    if answers:
        taken = conn.execute(_TAKE_QUESTIONS, dict(b_ids=list(answers), b_now=now)).scalars().all()
        if taken:
            claimed += [Claimed(**row._mapping) for row in conn.execute(
                _LEASE_ANSWERS, dict(leased, b_ids=[answers[qid] for qid in taken]))]
            conn.execute(_EVENT, [_event(r.question_id, owner, "send", f"attempt {r.send_attempts}",
                                         Status.APPROVED.value, Status.SENDING.value) for r in claimed])
    if notices:
        claimed += [Claimed(**row._mapping) for row in conn.execute(_LEASE_NOTICES, dict(leased, b_ids=notices))]
    conn.commit()
    return sorted(claimed, key=lambda r: r.id)


def renew(conn: Connection, replies: list[Claimed], owner: str, lease: float) -> set[int]:
    """Extend the lease of these replies, committed; the ids still ours. One whose lease ran out
    is not renewed: the sweep may be settling it."""
    now = utcnow()
    kept = conn.execute(_RENEW, dict(b_ids=[r.id for r in replies], b_owner=owner, b_now=now,
                                     b_until=now + timedelta(seconds=lease))).scalars().all()
    conn.commit()
    return set(kept)


def unclaim(conn: Connection, replies: list[Claimed], owner: str, why: str) -> None:
    """Replies claimed but not sent (a server unreachable, or a stop): put back as they were,
    without counting the attempt against them, committed. Only those whose lease is still ours."""
    for reply in replies:
        mine = conn.execute(_UNCLAIM, dict(w_id=reply.id, b_owner=owner,
                                           v_attempts=max(0, reply.send_attempts - 1))).rowcount == 1
        if mine and reply.purpose == "answer":
            states.transition(conn, reply.question_id, Status.SENDING, Status.APPROVED, owner, why, action="send")
    conn.commit()
