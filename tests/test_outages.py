"""Outages of the mail servers, end to end through the worker's jobs against real Dovecot and aiosmtpd:
the affected items keep their state, each outage is logged once (and its end once), runs back off
while a server is down, and after recovery every message is stored once and every reply arrives once.
Database outages are in test_outages_db.py."""
import logging
import threading
import types
from datetime import timedelta

from sqlmodel import Session

from consultant import operator
from consultant.models import Question, Reply, utcnow
from consultant.worker import Worker
from outagesupport import (approve_all, event_count, fill_inbox, gaps, lines, questions, replies, sending_state,
                           worker_on_clock)
from servers import wait_until
from support import make_settings, question_bytes, smtp_section


# --- IMAP ------------------------------------------------------------------------------------

def test_dovecot_stopped_mid_poll_keeps_the_committed_batches_and_the_next_polls_fetch_the_rest(
        sqlite_engine, sqlite_url, dovecot, imap_user, caplog):
    total, size = 300, 50
    fill_inbox(imap_user, [question_bytes(n) for n in range(total)])
    settings = make_settings(sqlite_url, imap_user, imap={"batch_size": size, "timeout": 5})
    worker, clock = worker_on_clock(sqlite_engine, settings)
    committed = []
    real_after_fetch = worker.fetcher._after_fetch

    def after_fetch(self, client, uids):
        """Called after each batch's commit: the server goes down after the second one."""
        real_after_fetch(client, uids)
        committed.append(len(uids))
        if len(committed) == 2:
            dovecot.stop()

    worker.fetcher._after_fetch = types.MethodType(after_fetch, worker.fetcher)
    try:
        with caplog.at_level(logging.INFO, logger="consultant"):
            worker.poll_job()
            cut_short = worker.last_poll
            during = questions(sqlite_engine)
            events = event_count(sqlite_engine)
            for _ in range(3):  # still down: runs knock after growing waits, skip in between
                clock.now += settings.worker.poll_every
                worker.poll_job()
                assert worker.last_poll.imap_ok is False
            assert (questions(sqlite_engine), event_count(sqlite_engine)) == (during, events)
            outage_lines = lines(caplog, "IMAP server unreachable")
            dovecot.start()
            clock.now += 4 * settings.worker.poll_every  # past the longest wait so far
            worker.poll_job()
            recovered = worker.last_poll
            worker.poll_job()
    finally:
        dovecot.start()
        worker.close()
    assert committed[:2] == [size, size]
    assert (cut_short.imap_ok, cut_short.fetched.stored, cut_short.processed.drafted) == (False, 2 * size, 2 * size)
    # The two committed batches stay, and were processed; nothing after them was stored.
    assert len(during) == 2 * size and {status for *_, status in during} == {"drafted"}
    assert outage_lines == 1
    assert (recovered.imap_ok, recovered.fetched.stored, recovered.processed.drafted) == (
        True, total - 2 * size, total - 2 * size)
    assert worker.last_poll.fetched.seen == 0
    final = questions(sqlite_engine)
    assert final[:2 * size] == during
    assert len(final) == total and {status for *_, status in final} == {"drafted"}
    assert len({message_id for message_id, *_ in final}) == total and len({uid for _, uid, _ in final}) == total
    assert lines(caplog, "IMAP server unreachable") == 1 and lines(caplog, "IMAP server reachable again") == 1


def test_while_imap_is_down_polls_back_off_doubling_up_to_the_cap_and_still_process(
        sqlite_engine, sqlite_url, dovecot, imap_user, caplog):
    settings = make_settings(sqlite_url, imap_user, imap={"timeout": 2}, worker={"poll_every": "10s"})
    worker, clock = worker_on_clock(sqlite_engine, settings)
    knocks = []
    real_fetch = worker._fetch

    def counted_fetch():
        knocks.append(clock.now)
        return real_fetch()

    worker._fetch = counted_fetch
    dovecot.stop()
    try:
        with caplog.at_level(logging.INFO, logger="consultant"):
            for tick in range(100):  # 1000 s of polls every 10 s
                if tick == 3:  # mail injected by an operator is still processed while IMAP is down
                    with Session(sqlite_engine) as session:
                        waiting = operator.inject(session, question_bytes(1), "test", "test.eml")
                        session.commit()
                worker.poll_job()
                clock.now += 10
    finally:
        dovecot.start()
        worker.close()
    assert gaps(knocks) == [10, 20, 40, 80, 160, 300, 300], knocks
    assert lines(caplog, "IMAP server unreachable") == 1
    with Session(sqlite_engine) as session:
        assert session.get(Question, waiting).status == "drafted"
    clock.now += 300
    dovecot.deliver(imap_user, question_bytes(2))
    worker.poll_job()
    assert (worker.last_poll.imap_ok, worker.last_poll.fetched.stored) == (True, 1)
    assert not worker.imap_backoff.down


# --- SMTP ------------------------------------------------------------------------------------

def test_smtp_refused_then_421_then_451_then_recovered_every_reply_arrives_once(
        sqlite_engine, sqlite_url, smtp, caplog):
    first = 60
    settings = make_settings(sqlite_url, smtp=smtp_section(smtp, timeout=5), worker={"send_every": "5s"},
                             send={"backoff_first": f"{first}s", "backoff_max": "1h"})
    ids = approve_all(sqlite_engine, settings, range(3))
    events, approved = event_count(sqlite_engine), sending_state(sqlite_engine, ids)
    worker, clock = worker_on_clock(sqlite_engine, settings)
    knocks = []
    try:
        with caplog.at_level(logging.INFO, logger="consultant"):
            smtp.stop()  # refusing connections
            try:
                for _ in range(3):
                    assert worker.send_job().sent == 0
                    clock.now += 5
            finally:
                smtp.start()
            smtp.fail_next("CONNECT", 421, "4.3.2 Too busy, try later", times=1000)
            for _ in range(130):  # 11 minutes of send runs every 5 s while the server greets with 421
                before = smtp.connections
                worker.send_job()
                if smtp.connections > before:
                    knocks.append(clock.now)
                clock.now += 5
            assert (sending_state(sqlite_engine, ids), event_count(sqlite_engine)) == (approved, events)
            outage_lines = lines(caplog, "SMTP server unreachable")
            smtp.clear()  # the server recovers, but greylists the first reply and is closing on the second
            smtp.fail_next("MAIL", 451, "4.7.1 Greylisted")
            smtp.fail_next("MAIL", 421, "4.3.2 Shutting down")
            clock.now += 300
            before = utcnow()
            recovery = worker.send_job()
            after = utcnow()
            retried = replies(sqlite_engine, ids)
            with Session(sqlite_engine) as session:  # their wait is over
                for reply in retried[:2]:
                    session.get(Reply, reply.id).next_attempt_at = utcnow()
                session.commit()
            clock.now += 5
            rest = worker.send_job()
    finally:
        smtp.start()
        worker.close()
    assert [attempts for _, attempts, *_ in approved] == [0, 0, 0]
    assert outage_lines == 1
    # Refused after 5 s, then 10 s; then a knock after each wait, twice as long each time, up to 300 s.
    assert gaps(knocks) == [20, 40, 80, 160, 300], knocks
    assert (recovery.sent, recovery.retrying, recovery.failed) == (1, 2, 0)
    for reply, code in zip(retried[:2], ("451", "421")):
        assert reply.send_attempts == 1 and reply.sent_at is None and code in reply.last_error
        # The first retry waits backoff_first with jitter: between half of it and all of it.
        assert before + timedelta(seconds=first / 2) <= reply.next_attempt_at <= after + timedelta(seconds=first)
    assert (rest.sent, rest.retrying) == (2, 0)
    final = replies(sqlite_engine, ids)
    arrived = [m.message["Message-ID"] for m in smtp.wait_for(3)]
    assert sorted(arrived) == sorted(r.message_id for r in final) and len(smtp.messages) == 3
    assert all(r.sent_at is not None for r in final)
    with Session(sqlite_engine) as session:
        assert {session.get(Question, qid).status for qid in ids} == {"sent"}
    assert lines(caplog, "SMTP server unreachable") == 1 and lines(caplog, "SMTP server reachable again") == 1


def test_the_running_worker_recovers_by_itself_when_smtp_comes_back(sqlite_engine, sqlite_url, smtp, caplog):
    settings = make_settings(sqlite_url, smtp=smtp_section(smtp, timeout=5),
                             worker={"poll_every": "1s", "send_every": "0.2s", "sweep_every": "1s"})
    [qid] = approve_all(sqlite_engine, settings, [7])
    worker = Worker(sqlite_engine, settings, fetch_mail=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    smtp.stop()
    try:
        with caplog.at_level(logging.INFO, logger="consultant"):
            thread.start()
            knocked = wait_until(lambda: worker.sender.smtp_outage.down, timeout=20)
            refused = sending_state(sqlite_engine, [qid])
            smtp.start()  # nobody tells the worker: its next send run after the wait finds the server
            arrived = smtp.wait_for(1, timeout=30)
    finally:
        smtp.start()
        worker.stop.set()
        thread.join(timeout=20)
    assert knocked and not thread.is_alive()
    assert [(status, attempts) for status, attempts, *_ in refused] == [("approved", 0)]
    assert len(arrived) == 1 and arrived[0].message["Message-ID"] == replies(sqlite_engine, [qid])[0].message_id
    with Session(sqlite_engine) as session:
        assert session.get(Question, qid).status == "sent"
    assert lines(caplog, "SMTP server unreachable") == 1 and lines(caplog, "SMTP server reachable again") == 1


def test_after_an_imap_outage_idle_finds_the_server_back_and_new_mail_is_not_held_by_the_backoff(
        sqlite_engine, sqlite_url, dovecot, imap_user):
    settings = make_settings(sqlite_url, imap_user, imap={"idle": True, "timeout": 5}, worker={"poll_every": 3600})
    worker = Worker(sqlite_engine, settings, fetch_mail=True)
    thread = threading.Thread(target=worker.run, kwargs={"send": False}, daemon=True)
    dovecot.stop()
    try:
        thread.start()  # the first poll finds IMAP down: its backoff waits an hour before the next fetch
        knocked = wait_until(lambda: worker.imap_backoff.down, timeout=20)
        dovecot.start()
        idle_back = wait_until(lambda: not worker.imap_backoff.down, timeout=20)  # IDLE reconnected
        dovecot.deliver(imap_user, question_bytes(8))
        fetched = wait_until(lambda: [s for *_, s in questions(sqlite_engine)] == ["drafted"], timeout=30)
    finally:
        dovecot.start()
        worker.stop.set()
        thread.join(timeout=20)
    assert knocked and idle_back and fetched and not thread.is_alive()
