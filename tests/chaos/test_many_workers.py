"""Three `consultant run` processes on one PostgreSQL share 2,000 questions from the real Dovecot and
500 approved replies to the real SMTP server: each question is stored, drafted and each reply sent
exactly once, every process does some of each, and only one process at a time fetches."""
import re
import time
from collections import Counter
from itertools import pairwise

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select
from sqlmodel import Session

from consultant import review
from consultant.models import Event, Question, Reply
from harness import Crew, worker_env
from support import drafted_all, make_settings, question_bytes

pytestmark = [pytest.mark.postgres, pytest.mark.chaos]

QUESTIONS, REPLIES, WORKERS = 2000, 500, 3
LEAD = re.compile(r"poll lead: fetched .* from (\d+\.\d+) to (\d+\.\d+)")
DRAFTED = re.compile(r"question (\d+) drafted as")


def fill_inbox(imap_user, numbers: range) -> set[str]:
    with IMAPClient(imap_user.host, imap_user.port, ssl=False) as client:
        client.login(imap_user.username, imap_user.password)
        for start in range(numbers.start, numbers.stop, 200):
            client.multiappend("INBOX", [question_bytes(n) for n in range(start, min(start + 200, numbers.stop))])
    return {f"<q{n}@ridgeview-clinic.test>" for n in numbers}


def approved_replies(engine, settings, numbers: range) -> set[str]:
    """Questions drafted in this process and approved: the Message-IDs of their replies."""
    ids = drafted_all(engine, settings, *(question_bytes(n) for n in numbers))
    with Session(engine) as session:
        for qid in ids:
            review.approve(session, qid, "alice", 30)
        session.commit()
        return set(session.execute(select(Reply.message_id).where(Reply.question_id.in_(ids))).scalars())


def wait_until(condition, timeout: float, what) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what() if callable(what) else what}"
        time.sleep(0.2)


@pytest.mark.timeout(720)  # a minute or two on a quiet machine; several when other tests load it
def test_three_workers_share_the_inbox_and_the_outbox_and_never_do_anything_twice(
        pg_url, pg_engine, dovecot, imap_user, smtp, tmp_path):
    t0, engine = time.monotonic(), pg_engine
    settings = make_settings(pg_url, screen={"max_per_hour": 100000})
    to_send = approved_replies(engine, settings, range(100001, 100001 + REPLIES))
    seeding = time.monotonic() - t0
    env = worker_env(tmp_path, pg_url, imap_user, smtp, imap={"idle": "false", "batch_size": 250},
                     worker={"poll_every": "1s", "send_every": "1s", "batch_size": 25},
                     send={"batch_size": 10}, screen={"max_per_hour": 100000}, log={"level": "DEBUG"})
    # No DATA is answered until every worker has connected, so each one sends some whatever the
    # order in which they start (a busy machine can take seconds to start Python).
    smtp.hold_data_until(connections=WORKERS, timeout=120)
    reader = engine.execution_options(readonly=True)

    def drafted() -> int:
        with Session(reader) as session:
            return session.execute(select(func.count()).where(Question.status == "drafted")).scalar_one()

    began = time.monotonic()
    with Crew(tmp_path, [env] * WORKERS, seed=0) as crew:
        for worker in crew.workers:
            worker.start()
        wait_until(lambda: all(w.is_ready(crew.ready) for w in crew.workers), 60, "the workers to start")
        starting = time.monotonic() - began
        expected = fill_inbox(imap_user, range(1, QUESTIONS + 1))  # all polling by now
        wait_until(lambda: drafted() >= QUESTIONS and len(smtp.messages) >= REPLIES, 420,
                   lambda: f"{QUESTIONS} drafts and {REPLIES} replies: {drafted()} drafted, "
                           f"{len(smtp.messages)} received")
        crew.stop()
        seconds = time.monotonic() - began
        exits = [w.proc.returncode for w in crew.workers]
        owners = {f":{w.proc.pid}": w for w in crew.workers}
    with Session(engine) as session:
        inbox = session.execute(select(Question.id, Question.message_id).where(Question.account != "inject")).all()
        statuses = dict(session.execute(select(Question.status, func.count()).group_by(Question.status)).all())
        replies = Counter(session.execute(select(Reply.question_id)).scalars())
        drafts = Counter(session.execute(select(Event.question_id).where(Event.to_status == "drafted")).scalars())
        senders = dict(session.execute(select(Event.actor, func.count()).where(
            Event.action == "send", Event.to_status == "sent").group_by(Event.actor)).all())
    assert not crew.tracebacks(), crew.tracebacks()[-4000:]
    assert exits == [0] * WORKERS, exits
    # Stored once: 2,000 rows, one per Message-ID appended, none quarantined.
    assert len(inbox) == QUESTIONS and {m for _, m in inbox} == expected
    assert statuses == {"drafted": QUESTIONS, "sent": REPLIES}, statuses
    # Drafted once: one reply and one 'drafted' event per question, and no process drafted one twice.
    assert set(replies.values()) == {1} and set(drafts.values()) == {1} and len(drafts) == QUESTIONS + REPLIES
    drafted_by = {pid: [int(q) for q in DRAFTED.findall(w.output())] for pid, w in owners.items()}
    every = [q for ids in drafted_by.values() for q in ids]
    assert sorted(every) == sorted(qid for qid, _ in inbox), "a question drafted twice, or never"
    # Sent once: 500 distinct Message-IDs, each one of the approved replies.
    ids = [m.message["Message-ID"] for m in smtp.messages]
    assert len(ids) == REPLIES and set(ids) == to_send
    sent_by = {actor[actor.rfind(":"):]: n for actor, n in senders.items()}
    assert set(sent_by) == set(owners) and sum(sent_by.values()) == REPLIES
    # Every process did some of the drafting and some of the sending.
    shares = {pid: (len(drafted_by[pid]), sent_by[pid]) for pid in owners}
    assert all(d > 0 and s > 0 for d, s in shares.values()), shares
    # One fetch at a time: the intervals in which a process held the poll lead never overlap,
    # and the lead was contended (some polls skipped the fetch), so that means something.
    leads = sorted((float(a), float(b)) for w in crew.workers for a, b in LEAD.findall(w.output()))
    assert leads and all(end <= start for (_, end), (start, _) in pairwise(leads)), leads
    skipped = sum(w.output().count("this poll skips the fetch") for w in crew.workers)
    assert skipped > 0
    print(f"seeded in {seeding:.1f}s; {WORKERS} workers started in {starting:.1f}s; "
          f"{QUESTIONS} questions and {REPLIES} replies done {seconds:.1f}s after the start; "
          f"(drafted, sent) per process: {sorted(shares.values())}; {len(leads)} fetches led, {skipped} skipped")
