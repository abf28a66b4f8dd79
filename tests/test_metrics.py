"""Prometheus metrics: the text format from prometheus-client, figures read from the database at
scrape time, and a scrape that survives a database outage."""
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session

from consultant import metrics
from consultant.db import make_engine
from consultant.models import Event, Question, utcnow
from consultant.servicelog import ServiceLog
from servers import free_port


def scrape(engine, now):
    body, content_type = metrics.render(engine, now)
    assert content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def add(session, status, received_at, moves=()):
    q = Question(status=status, dedupe_key=f"<m{received_at.timestamp()}{status}@t>", received_at=received_at,
                 updated_at=received_at)
    session.add(q)
    session.flush()
    for to in moves:
        session.add(Event(question_id=q.id, at=received_at, actor="t", action="t", to_status=to))


def test_questions_per_status_waiting_age_and_totals_come_from_the_database(engine):
    now = utcnow()
    with Session(engine) as session:
        add(session, "drafted", now - timedelta(minutes=40))
        add(session, "drafted", now - timedelta(minutes=5))
        add(session, "sent", now - timedelta(days=2), moves=["sent"])
        add(session, "sent", now - timedelta(days=1), moves=["failed", "sent"])
        session.commit()
    got = scrape(engine, now)
    assert got[("consultant_questions", (("status", "drafted"),))] == 2
    assert got[("consultant_questions", (("status", "sent"),))] == 2
    assert got[("consultant_questions", (("status", "failed"),))] == 0
    assert got[("consultant_waiting_questions", ())] == 2
    assert abs(got[("consultant_oldest_waiting_seconds", ())] - 40 * 60) < 1
    assert got[("consultant_replies_sent_total", ())] == 2
    assert got[("consultant_send_failures_total", ())] == 1
    assert got[("consultant_database_up", ())] == 1


def test_the_last_poll_and_whether_the_servers_answered_are_exported(engine):
    log = ServiceLog(engine)
    good = utcnow() - timedelta(minutes=3)
    log.record("poll", good, ok=True, server_ok=True, counts={"stored": 1}, finished_at=good)
    failed_at = utcnow()
    log.record("poll", failed_at, ok=False, server_ok=False, error="IMAP server unreachable", finished_at=failed_at)
    got = scrape(engine, utcnow())
    assert got[("consultant_last_poll_success", ())] == 0
    assert got[("consultant_last_poll_timestamp_seconds", ())] == failed_at.timestamp()
    assert got[("consultant_last_successful_poll_timestamp_seconds", ())] == good.timestamp()
    assert got[("consultant_imap_up", ())] == 0
    assert ("consultant_smtp_up", ()) not in got  # no send run has needed SMTP yet


def test_scraping_twice_gives_the_same_figures_not_doubled_ones(engine):
    now = utcnow()
    with Session(engine) as session:
        add(session, "sent", now, moves=["sent"])
        session.commit()
    assert scrape(engine, now) == scrape(engine, now)


def test_an_unreachable_database_gives_database_up_zero_and_no_error():
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/consultant")
    try:
        got = scrape(engine, utcnow())
    finally:
        engine.dispose()
    assert got == {("consultant_database_up", ()): 0}
