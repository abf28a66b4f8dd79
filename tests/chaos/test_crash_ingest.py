"""Ingest under SIGKILL: the real worker fetches and drafts 500+ questions from the real Dovecot while
it is killed at random moments and restarted; afterwards each message is stored and drafted once."""
import functools

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select
from sqlmodel import Session

from consultant.db import make_engine
from consultant.models import Event, Question, Reply
from harness import Crew, chaos_seed, worker_env
from support import question_bytes

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]  # minutes when the machine is busy

MESSAGES = 520
FIRST = 200  # in the inbox before the first worker starts
CHUNK = 20  # then this many after each kill, until all are in
KILLS = 20
MAX_ATTEMPTS = 3  # limits.max_attempts, the default


def append(imap_user, numbers: range) -> None:
    """APPEND the questions with these numbers in one MULTIAPPEND."""
    with IMAPClient(imap_user.host, imap_user.port, ssl=False) as client:
        client.login(imap_user.username, imap_user.password)
        client.multiappend("INBOX", [question_bytes(n) for n in numbers])


def test_every_question_is_stored_once_and_drafted_once_whatever_the_kills(sqlite_url, dovecot, imap_user, tmp_path):
    seed = chaos_seed()
    expected = {f"<q{n}@ridgeview-clinic.test>" for n in range(1, MESSAGES + 1)}
    append(imap_user, range(1, FIRST + 1))
    # The rest arrives while the worker runs, a chunk after each kill: every run has mail to fetch
    # and process, however fast the machine, and kills land in fetches as well as in processing.
    chunks = [functools.partial(append, imap_user, range(n, min(n + CHUNK, MESSAGES + 1)))
              for n in range(FIRST + 1, MESSAGES + 1, CHUNK)]
    engine = make_engine(sqlite_url)
    env = worker_env(tmp_path, sqlite_url, imap_user,
                     imap={"idle": "false", "batch_size": 20},
                     worker={"poll_every": "1s", "batch_size": 25, "send_every": "1h", "sweep_every": "1h"},
                     screen={"max_per_hour": 100000}, limits={"max_attempts": MAX_ATTEMPTS})

    def settled() -> bool:  # every message stored, and none waiting
        with Session(engine.execution_options(readonly=True)) as session:
            counts = dict(session.execute(select(Question.status, func.count()).group_by(Question.status)).all())
        return sum(counts.values()) >= MESSAGES and not counts.keys() & {"received", "parsed"}

    with Crew(tmp_path, [env], seed) as crew:
        report = crew.run_until(settled, deadline=200, kill_after=(0.3, 2.5), max_kills=KILLS, after_kill=chunks)
    why = crew.describe()
    try:
        with Session(engine) as session:
            ids = session.execute(select(Question.message_id)).scalars().all()
            statuses = dict(session.execute(select(Question.status, func.count()).group_by(Question.status)).all())
            reasons = dict(session.execute(select(Question.id, Question.reason).where(Question.status != "drafted")).all())
            replies = dict(session.execute(select(Reply.question_id, func.count()).group_by(Reply.question_id)).all())
            drafted_events = dict(session.execute(
                select(Event.question_id, func.count()).where(Event.to_status == "drafted")
                .group_by(Event.question_id)).all())
            question_ids = session.execute(select(Question.id)).scalars().all()
    finally:
        engine.dispose()
    # A question the worker died on max_attempts times is quarantined as if it killed the worker.
    # Killed at random, an innocent one can be: only with a death in its batch and the rest while it
    # was alone in flight, each of those a kill of its own. Rare, and never without the kills.
    gave_up = {qid for qid, reason in reasons.items() if (reason or "").startswith("gave up after")}
    print(f"{why}; {len(ids)} questions stored of {MESSAGES} appended; {statuses}; "
          f"{len(gave_up)} quarantined after dying {MAX_ATTEMPTS} times")
    assert not crew.tracebacks(), f"{why}\n{crew.tracebacks()[-4000:]}"
    assert report.done, f"{why}: not all settled in time: {statuses} {list(reasons.values())[:5]}"
    assert report.kills >= len(chunks), f"{why}: too few kills to mean anything"
    assert report.exits == 0 and crew.workers[0].proc.returncode == 0, f"{why}\n{crew.output()[-3000:]}"
    assert len(ids) == MESSAGES and set(ids) == expected, f"{why}: stored {len(ids)}, {len(set(ids))} distinct"
    assert set(reasons) == gave_up, f"{why}: {statuses} {list(reasons.values())[:5]}"
    assert len(gave_up) <= min(report.kills // (MAX_ATTEMPTS - 1), MESSAGES // 100), f"{why}: {len(gave_up)}"
    drafted = set(question_ids) - gave_up
    assert all(replies.get(qid) == 1 for qid in drafted), f"{why}: reply rows per question differ from 1"
    assert all(drafted_events.get(qid) == 1 for qid in drafted), f"{why}: 'drafted' events differ from 1"
    assert not gave_up & (replies.keys() | drafted_events.keys()), f"{why}: a quarantined question has a draft"
