"""Helpers for the outage tests (test_outages*.py): a hand-moved clock for the worker's backoff, log
line counts, and snapshots of what the outages must leave unchanged."""
from itertools import pairwise

from imapclient import IMAPClient
from sqlalchemy import func, select
from sqlmodel import Session

from consultant import review
from consultant.models import Event, Question, Reply
from consultant.worker import Worker
from support import drafted, question_bytes


class Clock:
    """The worker's backoff clock, moved by hand: the test says when time passes."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def worker_on_clock(engine, settings) -> tuple[Worker, Clock]:
    worker, clock = Worker(engine, settings), Clock()
    worker.imap_backoff.clock = worker.send_backoff.clock = worker.db_backoff.clock = clock
    return worker, clock


def gaps(times: list[float]) -> list[int]:
    """Whole seconds between successive times."""
    return [round(b - a) for a, b in pairwise(times)]


def lines(caplog, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


def fill_inbox(user, messages: list[bytes]) -> None:
    """Put many messages in the INBOX with one MULTIAPPEND (a serial APPEND per message is slow)."""
    client = IMAPClient(user.host, user.port, ssl=False)
    try:
        client.login(user.username, user.password)
        client.multiappend("INBOX", messages)
    finally:
        client.logout()


def questions(engine) -> list[tuple]:
    with Session(engine) as session:
        return session.execute(select(Question.message_id, Question.uid, Question.status)
                               .order_by(Question.id)).all()


def event_count(engine) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(Event)).scalar_one()


def approve_all(engine, settings, numbers) -> list[int]:
    """Questions `question_bytes(n)` for each n, drafted and approved: replies due to be sent."""
    ids = [drafted(engine, settings, question_bytes(n)) for n in numbers]
    with Session(engine) as session:
        for qid in ids:
            review.approve(session, qid, "alice", 30)
        session.commit()
    return ids


def replies(engine, ids) -> list[Reply]:
    with Session(engine) as session:
        return [session.execute(select(Reply).where(Reply.question_id == qid)).scalars().one() for qid in ids]


def sending_state(engine, ids) -> list[tuple]:
    with Session(engine) as session:
        status = [session.get(Question, qid).status for qid in ids]
    return [(s, r.send_attempts, r.next_attempt_at, r.lease_owner, r.sent_at, r.last_error)
            for s, r in zip(status, replies(engine, ids))]
