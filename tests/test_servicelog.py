"""The service log: the worker writes one row per poll, send and sweep run, quietly survives a
database outage, folds idle runs together and keeps the table bounded."""
import json
import logging
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlmodel import Session

from consultant import operator, review, servicelog
from consultant.db import make_engine
from consultant.models import Question, utcnow
from consultant.opstables import ServiceRun
from consultant.servicelog import ServiceLog
from consultant.worker import Worker
from servers import free_port
from support import drafted, make_settings, question_bytes, smtp_section


def runs(engine, job=None):
    with Session(engine) as session:
        query = select(ServiceRun).order_by(ServiceRun.id)
        if job:
            query = query.where(ServiceRun.job == job)
        return session.execute(query).scalars().all()


def approved(engine, settings, n=1) -> int:
    qid = drafted(engine, settings, question_bytes(n))
    with Session(engine) as session:
        review.approve(session, qid, "alice", 30)
        session.commit()
    return qid


def dead_engine():
    """An engine for a PostgreSQL port nobody listens on: every connection is refused."""
    return make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")


def test_a_poll_that_drafts_records_its_counts_and_that_imap_answered(engine, db_url, dovecot, imap_user):
    dovecot.deliver(imap_user, question_bytes(1))
    worker = Worker(engine, make_settings(db_url, imap_user))
    try:
        worker.poll_once()
    finally:
        worker.close()
    [run] = runs(engine, "poll")
    assert (run.ok, run.server_ok, run.idle, run.error) == (True, True, False, None)
    assert run.counts["stored"] == 1 and run.counts["drafted"] == 1
    assert run.started_at <= run.finished_at


def test_a_poll_while_imap_is_down_records_a_failure_without_the_address(sqlite_engine, sqlite_url, dovecot, imap_user):
    settings = make_settings(sqlite_url, imap_user, imap={"timeout": 2})
    dovecot.stop()
    try:
        worker = Worker(sqlite_engine, settings)
        worker.poll_once()
        worker.poll_once()
        worker.close()
    finally:
        dovecot.start()
    failures = runs(sqlite_engine, "poll")
    assert [(r.ok, r.server_ok) for r in failures] == [(False, False), (False, False)]
    assert "IMAP server unreachable" in failures[0].error
    assert imap_user.username not in failures[0].error


def test_idle_runs_fold_into_one_row_and_a_busy_run_starts_a_new_one(engine, db_url):
    worker = Worker(engine, make_settings(db_url), fetch_mail=False)
    try:
        for _ in range(3):
            worker.poll_once()
        with Session(engine) as session:
            operator.inject(session, question_bytes(1), "test", "q1.eml")
            session.commit()
        worker.poll_once()  # drafts it
        worker.poll_once()
    finally:
        worker.close()
    rows = runs(engine, "poll")
    assert [(r.idle, r.runs) for r in rows] == [(True, 3), (False, 1), (True, 1)]
    assert rows[1].counts["drafted"] == 1
    assert rows[0].finished_at > rows[0].started_at
    assert rows[0].server_ok is None  # no IMAP fetch was asked for


def test_a_send_run_records_what_was_sent_and_that_smtp_answered(engine, db_url, smtp):
    settings = make_settings(db_url, smtp=smtp_section(smtp))
    approved(engine, settings)
    worker = Worker(engine, settings, fetch_mail=False)
    try:
        assert worker.send_job().sent == 1
        worker.send_job()  # nothing due: SMTP is not contacted
    finally:
        worker.close()
    busy, idle = runs(engine, "send")
    assert (busy.ok, busy.server_ok, busy.counts["sent"]) == (True, True, 1)
    assert (idle.ok, idle.server_ok, idle.idle) == (True, None, True)
    with Session(engine) as session:
        smtp_seen = servicelog.summary(session)["smtp"]
    assert smtp_seen["answered"] is True and smtp_seen["at"] == busy.finished_at


def test_a_send_run_while_smtp_is_down_records_that_it_did_not_answer(engine, db_url):
    settings = make_settings(db_url, smtp={"host": "127.0.0.1", "port": free_port(), "security": "plain",
                                           "timeout": 2})
    approved(engine, settings)
    worker = Worker(engine, settings, fetch_mail=False)
    try:
        worker.send_job()
    finally:
        worker.close()
    [run] = runs(engine, "send")
    assert (run.ok, run.server_ok) == (False, False)
    assert run.error.startswith("SMTP server unreachable")


def test_a_sweep_run_is_recorded_and_prunes_runs_older_than_thirty_days(engine, db_url):
    log = ServiceLog(engine)
    now = utcnow()
    old = now - timedelta(days=servicelog.KEEP_DAYS, minutes=1)
    recent = now - timedelta(days=servicelog.KEEP_DAYS - 1)
    log.record("poll", old, ok=True, counts={"drafted": 1}, finished_at=old)
    log.record("poll", recent, ok=True, counts={"drafted": 2}, finished_at=recent)
    worker = Worker(engine, make_settings(db_url), fetch_mail=False)
    try:
        counts = worker.sweep_job()
    finally:
        worker.close()
    assert counts.runs_pruned == 1
    assert [r.counts["drafted"] for r in runs(engine, "poll")] == [2]
    [sweep] = runs(engine, "sweep")
    assert sweep.ok and sweep.counts["runs_pruned"] == 1


def test_an_error_is_stored_short_on_one_line_with_addresses_redacted(engine):
    long_error = "refused jane.doe@clinic.test\nbecause " + "x" * 1000
    assert ServiceLog(engine).record("send", utcnow(), ok=False, error=long_error)
    [run] = runs(engine)
    assert "jane.doe@" not in run.error and "j***@clinic.test" in run.error
    assert "\n" not in run.error and len(run.error) == servicelog.MAX_ERROR_CHARS


def test_a_database_outage_makes_recording_return_false_and_log_once(caplog):
    engine = dead_engine()
    log = ServiceLog(engine)
    with caplog.at_level(logging.WARNING, logger="consultant"):
        results = [log.record("poll", utcnow(), ok=True) for _ in range(3)]
    engine.dispose()
    assert results == [False, False, False]
    assert len([r for r in caplog.records if "service log" in r.getMessage()]) == 1


@pytest.mark.postgres
def test_poll_send_and_sweep_survive_a_database_outage_and_recording_resumes_after_it(pg_url, pg_cluster):
    engine = make_engine(pg_url)
    name = make_url(pg_url).database
    worker = Worker(engine, make_settings(pg_url), fetch_mail=False)
    try:
        pg_cluster.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        pg_cluster.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        try:
            assert worker.poll_once().db_ok is False
            assert worker.send_job().sent == 0
            assert worker.sweep_job() is None
        finally:
            pg_cluster.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        worker.db_backoff.settle(True)  # skip the backoff's wait (tested in test_outages_db.py)
        worker.send_job()
    finally:
        worker.close()
    assert [(r.job, r.ok) for r in runs(engine)] == [("send", True)]
    engine.dispose()


def test_the_summary_says_never_for_jobs_that_never_ran_and_is_json_ready(engine):
    with Session(engine) as session:
        summary = servicelog.summary(session)
    assert summary["poll"] == {"last": None, "last_success_at": None}
    assert summary["imap"]["answered"] is None and summary["smtp"]["answered"] is None
    json.dumps(summary, default=str)


def test_the_summary_keeps_the_last_success_when_later_runs_fail(engine):
    log = ServiceLog(engine)
    first = utcnow() - timedelta(minutes=10)
    log.record("poll", first, ok=True, server_ok=True, counts={"stored": 1}, finished_at=first)
    log.record("poll", utcnow(), ok=False, server_ok=False, error="IMAP server unreachable: refused")
    with Session(engine) as session:
        summary = servicelog.summary(session)
    assert summary["poll"]["last_success_at"] == first
    assert summary["poll"]["last"]["ok"] is False
    assert summary["imap"] == {"answered": False, "at": summary["poll"]["last"]["finished_at"],
                               "error": "IMAP server unreachable: refused"}


@pytest.mark.postgres
def test_polling_recovers_after_the_database_comes_back(pg_url, pg_cluster):
    engine = make_engine(pg_url)
    name = make_url(pg_url).database
    settings = make_settings(pg_url)
    worker = Worker(engine, settings, fetch_mail=False)
    try:
        assert worker.poll_once().db_ok  # the code lookup has read the database once
        worker.processor.lookup.session.execute(select(1))  # the outage strikes mid-read
        pg_cluster.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        pg_cluster.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        try:
            assert worker.poll_once().db_ok is False
            assert worker.poll_once().db_ok is False
        finally:
            pg_cluster.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        with Session(engine) as session:
            qid = operator.inject(session, question_bytes(1), "test", "test.eml")
            session.commit()
        result = worker.poll_once()
    finally:
        worker.close()
    assert result.db_ok and result.processed.drafted == 1
    with Session(engine) as session:
        assert session.get(Question, qid).status == "drafted"
    engine.dispose()
