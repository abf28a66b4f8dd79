"""Database outages, end to end through the worker's poll, send and sweep jobs with real Dovecot and
aiosmtpd: SQLite locked by another writer for longer than the busy timeout, and PostgreSQL restarted
and stopped under the worker. No state changes, the IMAP messages are not flagged, no reply goes out,
one log line for the outage and one for its end, and afterwards everything is stored, drafted and
sent exactly once."""
import logging
import sqlite3

import pytest
from imapclient import IMAPClient
from sqlalchemy import event
from sqlalchemy.engine import make_url

from consultant.db import make_engine
from consultant.worker import Worker
from outagesupport import (Clock, approve_all, event_count, gaps, lines, questions, sending_state,
                           worker_on_clock)
from support import make_settings, question_bytes, smtp_section

FLAG = "$CaseConsultant"


def flagged(user) -> list[bool]:
    """For each message in the INBOX, in UID order: does it carry our after-fetch flag?"""
    client = IMAPClient(user.host, user.port, ssl=False)
    try:
        client.login(user.username, user.password)
        client.select_folder("INBOX", readonly=True)
        flags = client.fetch(client.search(["ALL"]), ["FLAGS"])
    finally:
        client.logout()
    return [FLAG.encode() in flags[uid][b"FLAGS"] for uid in sorted(flags)]


def outage_settings(url, imap_user, smtp):
    return make_settings(url, imap_user, imap={"after_fetch": "flag", "flag": FLAG},
                         smtp=smtp_section(smtp, timeout=5))


def run_all(worker: Worker, clock: Clock) -> tuple:
    """Poll, send and sweep, each after a wait longer than any backoff: every job really runs."""
    clock.now += 1000
    worker.poll_job()
    clock.now += 1000
    send = worker.send_job()
    clock.now += 1000
    return worker.last_poll, send, worker.sweep_job()


def snapshot(engine, ids) -> tuple:
    return questions(engine), event_count(engine), sending_state(engine, ids)


@pytest.fixture
def quick_engine(sqlite_url):
    """The SQLite engine with a short busy timeout, so a lock can outlast it in a test."""
    engine = make_engine(sqlite_url, busy_timeout=0.3)
    yield engine
    engine.dispose()


def test_sqlite_locked_longer_than_the_busy_timeout_changes_nothing_then_recovers(
        quick_engine, sqlite_url, dovecot, imap_user, smtp, caplog):
    engine = quick_engine
    settings = outage_settings(sqlite_url, imap_user, smtp)
    ids = approve_all(engine, settings, [0])  # one reply waiting to go
    for n in (11, 12):
        dovecot.deliver(imap_user, question_bytes(n))
    before = snapshot(engine, ids)
    worker, clock = worker_on_clock(engine, settings)
    holder = sqlite3.connect(make_url(sqlite_url).database, isolation_level=None, timeout=0)
    try:
        with caplog.at_level(logging.INFO, logger="consultant"):
            holder.execute("BEGIN EXCLUSIVE")  # another process writes and holds the lock
            try:
                locked = [run_all(worker, clock) for _ in range(2)]
                flags_during, sent_during = flagged(imap_user), list(smtp.messages)
            finally:
                holder.execute("ROLLBACK")
            during = snapshot(engine, ids)
            outage_lines = lines(caplog, "database unreachable")
            poll, send, sweep = run_all(worker, clock)
    finally:
        holder.close()
        worker.close()
    for poll_during, send_during, sweep_during in locked:
        assert poll_during.db_ok is False and send_during.sent == 0 and sweep_during is None
    assert during == before and flags_during == [False, False] and sent_during == []
    assert outage_lines == 1 and lines(caplog, "service log") == 0
    assert (poll.db_ok, poll.fetched.stored, poll.processed.drafted, send.sent) == (True, 2, 2, 1)
    assert sweep is not None and flagged(imap_user) == [True, True]
    assert [status for *_, status in questions(engine)] == ["sent", "drafted", "drafted"]
    assert len(smtp.wait_for(1)) == 1
    assert lines(caplog, "database unreachable") == 1 and lines(caplog, "database reachable again") == 1


@pytest.fixture
def pg_engine(pg_url):
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.mark.postgres
def test_postgresql_restarted_and_stopped_under_the_worker_changes_nothing_then_recovers(
        pg_engine, pg_url, pg_cluster, dovecot, imap_user, smtp, caplog):
    engine = pg_engine
    settings = outage_settings(pg_url, imap_user, smtp)
    worker, clock = worker_on_clock(engine, settings)
    knocks = []

    def count_connects(*_args):  # a connection attempt (returning None lets it go ahead)
        knocks.append(clock.now)

    try:
        with caplog.at_level(logging.INFO, logger="consultant"):
            dovecot.deliver(imap_user, question_bytes(1))
            warm = run_all(worker, clock)[0]  # the pool, the lookup session and the lock hold connections now
            ids = approve_all(engine, settings, [0])  # a reply to send, beside the question fetched
            try:
                pg_cluster.restart()  # between runs: every pooled connection is dead, nobody notices
                dovecot.deliver(imap_user, question_bytes(2))
                after_restart = run_all(worker, clock)
                restart_lines = lines(caplog, "database")
                before = snapshot(engine, ids)
                pg_cluster.stop()  # now during runs
                dovecot.deliver(imap_user, question_bytes(3))
                stopped = run_all(worker, clock)  # each job meets the dead server once
                down_since = clock.now
                event.listen(engine, "do_connect", count_connects)
                for _ in range(130):  # then 11 minutes of the jobs every 5 s
                    clock.now += 5
                    worker.poll_job(), worker.send_job(), worker.sweep_job()
                event.remove(engine, "do_connect", count_connects)
                flags_during, sent_during = flagged(imap_user), list(smtp.messages)
            finally:
                pg_cluster.start()
            during = snapshot(engine, ids)
            outage_lines = lines(caplog, "database unreachable")
            poll, send, sweep = run_all(worker, clock)
    finally:
        worker.close()
    assert warm.db_ok and warm.fetched.stored == 1
    assert after_restart[0].db_ok and after_restart[0].fetched.stored == 1 and after_restart[1].sent == 1
    assert after_restart[2] is not None and restart_lines == 0
    assert stopped[0].db_ok is False and stopped[1].sent == 0 and stopped[2] is None
    # The jobs knock on the dead database after a wait that doubles each time, up to 300 s.
    assert gaps([down_since, *sorted(set(knocks))]) == [20, 40, 80, 160, 300], knocks
    assert during == before and flags_during == [True, True, False] and len(sent_during) == 1
    assert outage_lines == 1 and lines(caplog, "service log") == 0
    assert (poll.db_ok, poll.fetched.stored, poll.processed.drafted, send.sent) == (True, 1, 1, 0)
    assert sweep is not None and flagged(imap_user) == [True, True, True]
    final = questions(engine)
    assert len({message_id for message_id, *_ in final}) == len(final) == 4
    assert len(smtp.wait_for(1)) == 1
    assert lines(caplog, "database unreachable") == 1 and lines(caplog, "database reachable again") == 1
