"""What the screen asks the database about a message: how many questions came in the last hour from
its sender and from everyone, and whether an operator requeued it. Each is one indexed query, run
only when a rule asks (see consultant.screen.screen)."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select
from sqlmodel import Session

from .models import Event, Question, utcnow
from .states import Status

WINDOW = timedelta(hours=1)
# Questions that got past the screen: what the global limit counts. Ignored mail is not a question,
# and quarantined mail (held by a limit or a failed sender check, or broken) is nobody's answer yet.
PASSED = tuple(s.value for s in Status if s not in (Status.RECEIVED, Status.IGNORED, Status.QUARANTINED))

# The queries below, built once and run with new parameters for every message.
_FROM_SENDER = select(func.count(Question.id)).where(
    Question.from_addr == bindparam("addr"), Question.received_at >= bindparam("since"),
    Question.id != bindparam("qid"), Question.status.not_in([Status.IGNORED.value, Status.QUARANTINED.value]))
_FIRST_SINCE = (select(Question.id).where(Question.received_at >= bindparam("since"))
                .order_by(Question.received_at).limit(1))
_PASSED_FROM = select(func.count()).select_from(Question).where(
    Question.status.in_(PASSED), Question.id >= bindparam("first"), Question.id != bindparam("qid"))
_LAST_ACTION = (select(Event.action).where(Event.question_id == bindparam("qid"))
                .order_by(Event.id.desc()).limit(1))


def from_sender(session: Session, qid: int, since: datetime) -> Callable[[str], int]:
    """Questions from this address since `since`, other than `qid`, ignored and quarantined ones
    not counted (a flood that was ignored must not keep its sender blocked, and mail held because
    someone forged the address must not use up that person's allowance). Addresses are stored
    lower-case (consultant.process), so the (from_addr, received_at) index answers this."""

    def count(addr: str) -> int:
        return session.execute(_FROM_SENDER, dict(addr=addr.lower(), since=since, qid=qid)).scalar_one()
    return count


def overall(session: Session, qid: int, since: datetime) -> Callable[[], int]:
    """Questions from all senders received since `since` that got past the screen, other than `qid`.

    This runs for every message, during a flood too, so it must not read the whole window: the id of
    the first question received in the window comes from the received_at index, and the count then
    reads only passed questions from that id on, from the (status, id) index alone. Ids grow with
    arrival (received_at is stamped when the row is inserted), so the two describe the same window;
    two rows inserted at the same moment by two workers may differ by a few milliseconds.
    """

    def count() -> int:
        first = session.execute(_FIRST_SINCE, dict(since=since)).scalar()
        if first is None:
            return 0
        return session.execute(_PASSED_FROM, dict(first=first, qid=qid)).scalar_one()
    return count


def released(session: Session, qid: int) -> Callable[[], bool]:
    """True when the last event of the question is an operator's requeue: they looked at it, so
    the rules that hold mail back (global limit, sender authentication) let it through this time."""

    def check() -> bool:
        last = session.execute(_LAST_ACTION, dict(qid=qid)).scalar()
        return last == "requeue"
    return check


def history(session: Session, qid: int, now: datetime | None = None) -> dict:
    """The keyword arguments consultant.screen.screen takes, for question `qid`."""
    since = (now or utcnow()) - WINDOW
    return dict(recent_from_sender=from_sender(session, qid, since),
                recent_overall=overall(session, qid, since), released=released(session, qid))
