"""The worker against a real Dovecot: poll --once drafts, IDLE picks mail up in seconds, outages change nothing."""
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

from sqlalchemy import select, update
from sqlmodel import Session

from consultant import finish, operator
from consultant.db import make_engine
from consultant.models import Question, Reply, utcnow
from consultant.opstables import ServiceRun
from consultant.process import Processor
from consultant.worker import Worker
from support import make_settings

QUESTION = (b"From: Jane Doe <jane.doe@ridgeview-clinic.test>\r\nTo: ask@caseconsultant.test\r\n"
            b"Subject: myelogram\r\nMessage-ID: <w%d@ridgeview-clinic.test>\r\n\r\n"
            b"Can I bill 62303 with 72128, and do I need modifier 59? Dx M54.16\r\n")


def statuses(engine):
    with Session(engine) as session:
        return session.execute(select(Question.status).order_by(Question.id)).scalars().all()


def test_poll_once_takes_a_question_from_the_inbox_to_a_draft(engine, db_url, dovecot, imap_user):
    dovecot.deliver(imap_user, QUESTION % 1)
    dovecot.deliver(imap_user, b"From: MAILER-DAEMON@mx.test\r\nReturn-Path: <>\r\nSubject: failure\r\n\r\nbounced\r\n")
    worker = Worker(engine, make_settings(db_url, imap_user))
    try:
        result = worker.poll_once()
    finally:
        worker.close()
    assert (result.fetched.stored, result.processed.drafted, result.processed.ignored) == (2, 1, 1)
    assert statuses(engine) == ["drafted", "ignored"]
    with Session(engine) as session:
        reply = session.execute(select(Reply)).scalars().one()
    assert reply.to_addr == "jane.doe@ridgeview-clinic.test" and reply.in_reply_to == "<w1@ridgeview-clinic.test>"


def test_an_imap_outage_changes_nothing_and_is_logged_once(sqlite_engine, sqlite_url, dovecot, imap_user, caplog):
    settings = make_settings(sqlite_url, imap_user, imap={"port": imap_user.port, "timeout": 2})
    dovecot.stop()
    try:
        worker = Worker(sqlite_engine, settings)
        with caplog.at_level("WARNING", logger="consultant"):
            results = [worker.poll_once() for _ in range(3)]
        worker.close()
    finally:
        dovecot.start()
    assert [r.imap_ok for r in results] == [False, False, False]
    assert statuses(sqlite_engine) == []
    outage_lines = [r for r in caplog.records if "IMAP server unreachable" in r.getMessage()]
    assert len(outage_lines) == 1


def test_idle_picks_up_a_new_question_within_seconds(sqlite_engine, sqlite_url, dovecot, imap_user):
    settings = make_settings(sqlite_url, imap_user, imap={"idle": True}, worker={"poll_every": 3600})
    worker = Worker(sqlite_engine, settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # the first poll finds an empty inbox; IDLE is set up
        delivered = time.monotonic()
        dovecot.deliver(imap_user, QUESTION % 2)
        while statuses(sqlite_engine) != ["drafted"] and time.monotonic() - delivered < 10:
            time.sleep(0.05)
        took = time.monotonic() - delivered
    finally:
        worker.stop.set()
        thread.join(timeout=10)
    # poll_every is an hour: only IDLE can have woken the worker within the wait.
    assert statuses(sqlite_engine) == ["drafted"], f"not drafted {took:.1f}s after delivery"
    assert not thread.is_alive()


def test_sigterm_stops_the_worker_cleanly(sqlite_url, dovecot, imap_user, tmp_path):
    env = dict(os.environ, CONSULTANT_DATABASE__URL=sqlite_url, CONSULTANT_IMAP__HOST=imap_user.host,
               CONSULTANT_IMAP__PORT=str(imap_user.port), CONSULTANT_IMAP__SECURITY="plain",
               CONSULTANT_IMAP__USERNAME=imap_user.username, CONSULTANT_IMAP__PASSWORD=imap_user.password,
               CONSULTANT_PATHS__VAR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "consultant", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # Wait for the first poll to be recorded: by then the signal handlers are installed (a
        # fixed sleep was too short on a loaded machine, and SIGTERM then killed it outright).
        engine = make_engine(sqlite_url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            with Session(engine) as session:
                if session.execute(select(ServiceRun.id).where(ServiceRun.job == "poll")).first():
                    break
            time.sleep(0.2)
        engine.dispose()
        assert proc.poll() is None, proc.stdout.read().decode()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out.decode()
    assert b"worker stopped" in out and b"Traceback" not in out


# --- processing: the poison-message cap and the per-sender rate limit, on SQLite and PostgreSQL ---

class Crash(BaseException):
    """Stands for the worker process dying (killed, out of memory): nothing on the way catches it."""


def inject(engine, raw: bytes) -> int:
    with Session(engine) as session:
        qid = operator.inject(session, raw, "test", "test.eml")
        session.commit()
    return qid


def question_from(sender: str, n: int, body: str = "Can I bill 62303 with 72128?") -> bytes:
    return (f"From: {sender}\r\nTo: ask@caseconsultant.test\r\nSubject: question {n}\r\n"
            f"Message-ID: <r{n}@ridgeview-clinic.test>\r\n\r\n{body}\r\n").encode()


def test_a_message_that_keeps_killing_the_worker_is_quarantined_after_max_attempts(engine, db_url, monkeypatch):
    settings = make_settings(db_url, limits={"max_attempts": 3})
    poison = inject(engine, question_from("jane@ridgeview-clinic.test", 1, body="POISON 62303"))
    healthy = inject(engine, question_from("omar@ridgeview-clinic.test", 2))
    real_parse, reads_of_poison = finish.parse_message, []

    def parse_or_die(raw, **limits):
        if b"POISON" in raw:
            reads_of_poison.append(1)
            raise Crash()
        return real_parse(raw, **limits)

    monkeypatch.setattr(finish, "parse_message", parse_or_die)
    for _ in range(6):  # a supervisor restarting the worker after each death
        processor = Processor(engine, settings)
        try:
            if not processor.run_once().handled:
                break
        except Crash:
            pass
        finally:
            processor.close()
    assert len(reads_of_poison) == 3
    with Session(engine) as session:
        dead, fine = session.get(Question, poison), session.get(Question, healthy)
        assert (dead.status, dead.stage) == ("quarantined", "process")
        assert dead.reason == "gave up after 3 attempts that each stopped the worker"
        assert fine.status == "drafted"


def test_the_rate_limit_counts_recent_questions_from_the_same_sender_in_the_database(engine, db_url):
    settings = make_settings(db_url, screen={"max_per_sender_per_hour": 2})
    jane, omar = "Jane Doe <jane@ridgeview-clinic.test>", "omar@ridgeview-clinic.test"
    ids = [inject(engine, question_from(who, n)) for n, who in enumerate([jane, jane, omar, jane, jane], 1)]

    def run():
        with Processor(engine, settings) as processor:
            processor.run_until_done()

    run()
    with Session(engine) as session:
        rows = [session.get(Question, qid) for qid in ids]
        assert [q.status for q in rows] == ["drafted", "drafted", "drafted", "ignored", "ignored"]
        # Ignored questions do not count against the sender: the limit stays at the two answered.
        assert rows[3].reason == rows[4].reason == (
            "rate limit (2 questions from this sender in the last hour; limit 2)")
        # An hour later the first two no longer count.
        session.execute(update(Question).where(Question.id.in_(ids[:2]))
                        .values(arrived_at=utcnow() - timedelta(minutes=61)))
        session.commit()
    later = inject(engine, question_from(jane, 6))
    run()
    with Session(engine) as session:
        assert session.get(Question, later).status == "drafted"
