"""What the screen asks the database about the messages of one batch: how many questions came in the
hour before each arrived, from its sender and from everyone, and whether an operator requeued it.

The limits count by arrival (question.arrived_at, the mail server's INTERNALDATE), not by when we
stored a message: a backlog fetched at once after an outage keeps the times its mail really came
in, so it is not taken for a flood, while a flood that came during the outage still is. Each
answer is read with one indexed query per batch (per sender for the sender's count), then kept up
to date in memory as the batch's own questions pass the screen (see consultant.process).
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, literal_column, select
from sqlmodel import Session

from .models import Event, Question, as_utc
from .states import Status

WINDOW = timedelta(hours=1)
# Questions that got past the screen: what the global limit counts. Ignored mail is not a question,
# and quarantined mail (held by a limit or a failed sender check, or broken) is nobody's answer yet.
PASSED = tuple(s.value for s in Status if s not in (Status.RECEIVED, Status.IGNORED, Status.QUARANTINED))
NOT_COUNTED_FOR_SENDER = (Status.IGNORED.value, Status.QUARANTINED.value)


def _words(values) -> list:
    """Fixed words written into the SQL: a list parameter would be expanded, and the statement
    rendered again, on every run."""
    return [literal_column(f"'{value}'") for value in values]


# The queries below, built once and run with new parameters for every batch.
_PASSED_IN = select(Question.id, Question.arrived_at).where(
    Question.status.in_(_words(PASSED)), Question.arrived_at >= bindparam("low"), Question.arrived_at <= bindparam("high"))
_FROM_SENDER_IN = select(Question.id, Question.arrived_at).where(
    Question.from_addr == bindparam("addr"), Question.arrived_at >= bindparam("low"),
    Question.arrived_at <= bindparam("high"), Question.status.not_in(_words(NOT_COUNTED_FOR_SENDER)))
_FROM_SENDERS_IN = select(Question.id, Question.from_addr, Question.arrived_at).where(
    Question.from_addr.in_(bindparam("addrs", expanding=True)), Question.arrived_at >= bindparam("low"),
    Question.arrived_at <= bindparam("high"), Question.status.not_in(_words(NOT_COUNTED_FOR_SENDER)))
_LAST_EVENTS = (select(Event.question_id, func.max(Event.id))
                .where(Event.question_id.in_(bindparam("ids", expanding=True))).group_by(Event.question_id))
_REQUEUES = select(Event.question_id).where(Event.id.in_(bindparam("ids", expanding=True)),
                                            Event.action == "requeue")


class Times:
    """Sorted arrival times, counted over a window ending at a given time."""

    def __init__(self, times) -> None:
        self.times = sorted(as_utc(t) for t in times)

    def count(self, until: datetime) -> int:
        return bisect_right(self.times, until) - bisect_left(self.times, until - WINDOW)

    def add(self, at: datetime) -> None:
        insort(self.times, at)


class BatchHistory:
    """The screen's questions for one batch of questions ({id: arrival time}).

    Rows of the batch itself are left out of what is read; `passed` adds one of them once it got
    through the screen, so the next message of the batch counts it, as it would count one committed
    by an earlier batch.
    """

    def __init__(self, session: Session, arrivals: dict[int, datetime]) -> None:
        self.session, self.arrivals = session, {qid: as_utc(at) for qid, at in arrivals.items()}
        times = self.arrivals.values()
        self.low = min(times) - WINDOW if times else None
        self.high = max(times) if times else None
        self.passes: list[tuple[int, str | None, datetime]] = []  # (id, sender, arrival)
        self._skip = set(self.arrivals)
        self._overall: Times | None = None
        self._senders: dict[str, Times] = {}
        self._released: set[int] | None = None

    def _times(self, found: list[datetime], sender: str | None = None) -> Times:
        """Times read from the database plus the passes not written yet (of this sender)."""
        return Times(found + [at for _qid, who, at in self.passes if sender is None or who == sender])

    def _rows(self, statement, **params) -> list[datetime]:
        rows = self.session.connection().execute(statement, dict(params, low=self.low, high=self.high))
        return [at for qid, at in rows if qid not in self._skip and at is not None]

    def overall(self) -> Times:
        if self._overall is None:
            self._overall = self._times(self._rows(_PASSED_IN))
        return self._overall

    def sender(self, addr: str) -> Times:
        addr = addr.lower()  # stored lower-case (consultant.process), so the index answers this
        if addr not in self._senders:
            self._senders[addr] = self._times(self._rows(_FROM_SENDER_IN, addr=addr), addr)
        return self._senders[addr]

    def preload(self, addrs) -> None:
        """Read the counts of these senders (those of the batch) with one query, not one each."""
        wanted = sorted({a.lower() for a in addrs if a} - self._senders.keys())
        for first in range(0, len(wanted), 500):
            chunk = wanted[first:first + 500]
            found: dict[str, list[datetime]] = {addr: [] for addr in chunk}
            rows = self.session.connection().execute(_FROM_SENDERS_IN, dict(addrs=chunk, low=self.low, high=self.high))
            for qid, addr, at in rows:
                if qid not in self._skip and at is not None and addr in found:
                    found[addr].append(at)
            self._senders.update((addr, self._times(times, addr)) for addr, times in found.items())

    def released(self) -> set[int]:
        """The batch's questions whose last event is an operator's requeue."""
        if self._released is None:
            self._released = requeued(self.session, list(self.arrivals))
        return self._released

    def passed(self, qid: int, sender: str | None) -> None:
        """Question `qid` of the batch got through the screen: count it from now on."""
        at, sender = self.arrivals[qid], sender.lower() if sender else None
        self.passes.append((qid, sender, at))
        if self._overall is not None:
            self._overall.add(at)
        if sender and sender in self._senders:
            self._senders[sender].add(at)

    def for_question(self, qid: int) -> dict:
        """The keyword arguments consultant.screen.screen takes, for question `qid` of the batch.

        `recent_from_sender` counts the questions from that address that arrived in the hour up to
        this one's arrival, ignored and quarantined ones not counted (a flood that was ignored must
        not keep its sender blocked, and mail held because someone forged the address must not use
        up that person's allowance); `recent_overall` those from all senders that got past the
        screen; `released` is true when an operator requeued it: they looked at it, so the rules
        that hold mail back (global limit, sender authentication) let it through this time.
        """
        at = self.arrivals[qid]
        return dict(recent_from_sender=lambda addr: self.sender(addr).count(at),
                    recent_overall=lambda: self.overall().count(at),
                    released=lambda: qid in self.released())


def requeued(session: Session, ids: list[int]) -> set[int]:
    """Those of these questions whose last event is an operator's requeue."""
    last = [row[1] for row in session.connection().execute(_LAST_EVENTS, dict(ids=ids))] if ids else []
    return set(session.connection().execute(_REQUEUES, dict(ids=last)).scalars()) if last else set()


def history(session: Session, qid: int) -> dict:
    """The screen's keyword arguments for one stored question on its own."""
    at = session.execute(select(Question.arrived_at).where(Question.id == qid)).scalar()
    if at is None:
        return {}
    return BatchHistory(session, {qid: at}).for_question(qid)
