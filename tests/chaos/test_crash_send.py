"""Sending under SIGKILL: the real worker sends 200+ approved replies to the real aiosmtpd while it is
killed at random moments and restarted. With a Sent folder every reply arrives exactly once (except
those reconcile had to leave to a person as "may have been sent": at most once, and rare); without
one, every reply arrives at least once and every copy of a reply carries the same Message-ID."""
import functools
import shutil
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from consultant import review
from consultant.db import make_engine
from consultant.models import Question, Reply
from harness import Crew, chaos_seed, worker_env
from support import drafted_all, make_settings, question_bytes

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]  # minutes when the machine is busy

REPLIES = 300
FIRST = 60  # approved before the first worker starts
CHUNK = 15  # then this many more after each kill, until all are approved
MAYBE_SENT = "may have reached the asker"


@pytest.fixture(scope="module")
def approved_db(seeded_sqlite, tmp_path_factory):
    """A database with REPLIES drafted replies, the first FIRST approved, made once for the module;
    each test copies it."""
    path = tmp_path_factory.mktemp("approved") / "approved.db"
    shutil.copyfile(seeded_sqlite, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    try:
        ids = drafted_all(engine, make_settings(url, screen={"max_per_hour": 100000}),
                          *(question_bytes(n) for n in range(1, REPLIES + 1)))
        with Session(engine) as session:
            for qid in ids[:FIRST]:
                review.approve(session, qid, "alice", 30)
            session.commit()
    finally:
        engine.dispose()
    return path


def approve(engine, ids: list[int]) -> None:
    with Session(engine) as session:
        for qid in ids:
            review.approve(session, qid, "alice", 30)
        session.commit()


def run_sending(approved_db, tmp_path, imap_user, smtp, sent_folder: str, kill_after: tuple[float, float]):
    """Copy the database, run the worker under kills (approving CHUNK more after each, so every run
    has replies to send however fast the machine) until all are approved and none is left to send;
    return (crew, {message_id: (status, reason)}, Counter of Message-IDs received)."""
    path = tmp_path / "consultant.db"
    shutil.copyfile(approved_db, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    reader = engine.execution_options(readonly=True)
    env = worker_env(tmp_path, url, imap_user, smtp,
                     imap={"idle": "false"}, smtp={"sent_folder": sent_folder},
                     worker={"poll_every": "1h", "send_every": "0.5s", "sweep_every": "1s"},
                     send={"lease": "4s", "batch_size": 5, "backoff_first": "0.5s", "backoff_max": "1s"})

    with Session(reader) as session:
        waiting = session.execute(select(Question.id).where(Question.status == "drafted")
                                  .order_by(Question.id)).scalars().all()
    chunks = [functools.partial(approve, engine, waiting[i:i + CHUNK]) for i in range(0, len(waiting), CHUNK)]

    def settled() -> bool:
        with Session(reader) as session:
            return not session.execute(select(func.count()).where(
                Question.status.in_(["drafted", "approved", "sending"]))).scalar_one()

    with Crew(tmp_path, [env], chaos_seed()) as crew:
        crew.run_until(settled, deadline=240, kill_after=kill_after, max_kills=20, after_kill=chunks)
    try:
        with Session(reader) as session:
            rows = session.execute(select(Reply.message_id, Question.status, Question.reason)
                                   .join(Question, Question.id == Reply.question_id)).all()
    finally:
        engine.dispose()
    received = Counter(m.message["Message-ID"] for m in smtp.messages)
    return crew, {mid: (status, reason or "") for mid, status, reason in rows}, received


def check_common(crew, replies, received):
    why = crew.describe()
    print(f"{why}; {len(replies)} replies, {len(received)} distinct received, "
          f"{sum(received.values())} messages, {sum(n - 1 for n in received.values())} duplicates")
    assert not crew.tracebacks(), f"{why}\n{crew.tracebacks()[-4000:]}"
    assert crew.report.done, f"{why}: not settled in time: {Counter(s for s, _ in replies.values())}"
    assert crew.report.kills >= (REPLIES - FIRST) // CHUNK, f"{why}: too few kills to mean anything"
    # No run ended by itself, and the last one stopped cleanly on SIGTERM.
    assert crew.report.exits == 0 and crew.workers[0].proc.returncode == 0, f"{why}\n{crew.output()[-3000:]}"
    assert len(replies) == REPLIES and set(received) <= set(replies), f"{why}: a message nobody approved"
    return why


def test_with_a_sent_folder_every_reply_arrives_exactly_once_whatever_the_kills(
        approved_db, tmp_path, imap_user, smtp):
    crew, replies, received = run_sending(approved_db, tmp_path, imap_user, smtp, "Sent", (0.2, 1.5))
    why = check_common(crew, replies, received)
    twice = {mid: n for mid, n in received.items() if n > 1}
    assert not twice, f"{why}: received more than once: {twice}"
    maybe = {mid for mid, (status, reason) in replies.items() if status == "failed" and MAYBE_SENT in reason}
    sent = {mid for mid, (status, _) in replies.items() if status == "sent"}
    print(f"{len(sent)} sent, {len(maybe)} left to a person as maybe sent "
          f"({len(maybe & set(received))} of those did arrive)")
    assert sent | maybe == set(replies), f"{why}: {Counter(s for s, _ in replies.values())}"
    assert all(received[mid] == 1 for mid in sent), f"{why}: a reply marked sent never arrived"
    # Only a kill between the message data going out and the copy marked delivered leaves a reply
    # in doubt: at most one per kill (one worker sends one reply at a time), and rare.
    assert len(maybe) <= min(crew.report.kills, REPLIES // 20), f"{why}: {len(maybe)} left in doubt"


def test_without_a_sent_folder_every_reply_arrives_at_least_once_with_one_message_id(
        approved_db, tmp_path, imap_user, smtp):
    crew, replies, received = run_sending(approved_db, tmp_path, imap_user, smtp, "", (0.1, 0.8))  # it sends faster
    why = check_common(crew, replies, received)
    statuses = Counter(status for status, _ in replies.values())
    assert statuses == {"sent": REPLIES}, f"{why}: {statuses}"
    assert set(received) == set(replies), f"{why}: {len(set(replies) - set(received))} never arrived"
    # Each asker has one question: every copy they got, first or resent, has that reply's Message-ID.
    ids_by_asker: dict[tuple, set] = {}
    for m in smtp.messages:
        ids_by_asker.setdefault(m.rcpt_tos, set()).add(m.message["Message-ID"])
    assert len(ids_by_asker) == REPLIES and all(len(ids) == 1 for ids in ids_by_asker.values()), \
        f"{why}: a resent copy carries another Message-ID"
    print(f"{sum(1 for n in received.values() if n > 1)} replies arrived more than once")
