"""Several workers on one database: one leads the poll of a mailbox (a PostgreSQL advisory lock), and
processing claims keep workers off each other's batches (FOR UPDATE SKIP LOCKED and a lease)."""
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlmodel import Session

from consultant import operator
from consultant.leader import Leadership, lock_key
from consultant.models import Question, utcnow
from consultant.process import Processor
from consultant.worker import Worker
from support import make_settings, question_bytes

postgres = pytest.mark.postgres


def inject(engine, *numbers: int) -> list[int]:
    with Session(engine) as session:
        ids = [operator.inject(session, question_bytes(n), "test", "test.eml") for n in numbers]
        session.commit()
    return ids


def rows(engine, ids):
    with Session(engine) as session:
        found = session.execute(select(Question).where(Question.id.in_(ids)).order_by(Question.id)).scalars()
        return [(q.attempts, q.processing_by, q.processing_until is not None) for q in found]


@postgres
def test_one_worker_at_a_time_leads_the_poll_of_a_mailbox(pg_engine):
    first, second = Leadership(pg_engine, "desk", "INBOX"), Leadership(pg_engine, "desk", "INBOX")
    other_mailbox = Leadership(pg_engine, "desk", "Archive")
    assert first.key == lock_key("desk", "INBOX") != other_mailbox.key
    with first.lead() as leading:
        assert leading
        with second.lead() as also:
            assert not also
        with other_mailbox.lead() as elsewhere:
            assert elsewhere
    with second.lead() as leading:  # released when the first one's fetch ended
        assert leading


def test_on_sqlite_every_worker_leads(sqlite_engine):
    first, second = Leadership(sqlite_engine, "desk", "INBOX"), Leadership(sqlite_engine, "desk", "INBOX")
    with first.lead() as leading, second.lead() as also:
        assert leading and also


@postgres
def test_a_worker_that_does_not_lead_skips_the_fetch_and_still_processes(pg_url, pg_engine, dovecot, imap_user):
    dovecot.deliver(imap_user, question_bytes(1))
    inject(pg_engine, 2)
    worker = Worker(pg_engine, make_settings(pg_url, imap_user))
    other = Leadership(pg_engine, worker.fetcher.account, worker.fetcher.mailbox)
    try:
        with other.lead() as leading:
            assert leading
            skipped = worker.poll_once()
            assert worker.leading is False
        led = worker.poll_once()
        assert worker.leading is True
    finally:
        worker.close()
    assert (skipped.imap_ok, skipped.fetched.seen, skipped.processed.drafted) == (True, 0, 1)
    assert (led.fetched.stored, led.processed.drafted) == (1, 1)


@postgres
def test_a_second_worker_skips_a_live_claim_and_counts_no_attempt_on_it(pg_url, pg_engine):
    ids = inject(pg_engine, *range(1, 6))
    settings = make_settings(pg_url, worker={"lease": "5m"})
    with Processor(pg_engine, settings, owner="a") as a, Processor(pg_engine, settings, owner="b") as b, \
            Processor(pg_engine, settings, owner="c") as c:
        assert a.claim(2, retried=False) == ids[:2]
        assert b.claim(2, retried=False) == ids[2:4]
        assert c.claim(5, retried=True) == []  # a's and b's batches are claimed, not abandoned
        assert rows(pg_engine, ids[:4]) == [(1, "a", True)] * 2 + [(1, "b", True)] * 2
        assert b.run_once().drafted == 1  # the one nobody holds
        with Session(pg_engine) as session:  # a dies; its lease runs out
            session.execute(update(Question).where(Question.id.in_(ids[:2]))
                            .values(processing_until=utcnow() - timedelta(seconds=1)))
            session.commit()
        assert b.claim(1, retried=True) == ids[:1]  # taken over one at a time, the attempt counted
        assert rows(pg_engine, ids[:1]) == [(2, "b", True)]


@postgres
def test_a_claim_skips_rows_another_worker_is_claiming_this_moment(pg_url, pg_engine):
    ids = inject(pg_engine, *range(1, 5))
    with Session(pg_engine) as other, Processor(pg_engine, make_settings(pg_url)) as processor:
        other.execute(select(Question.id).where(Question.id.in_(ids[:2])).with_for_update()).all()
        assert processor.claim(10, retried=False) == ids[2:]  # no wait for the locked rows
        other.rollback()


def test_a_batch_releases_its_claim_and_a_restarted_worker_takes_its_own_batch_back(db_url, engine):
    ids = inject(engine, 1, 2)
    settings = make_settings(db_url)
    with Processor(engine, settings, owner="a") as first:
        assert first.claim(2, retried=False) == ids  # and then it dies
    with Processor(engine, settings, owner="a") as again, Processor(engine, settings, owner="b") as b:
        by_b, by_again = b.run_once().drafted, again.run_once().drafted
    # PostgreSQL: b respects a's live lease, and "a" restarted takes its batch back at once.
    # SQLite (one worker per file): there is no lease to wait for; whoever comes takes it over.
    assert (by_b, by_again) == ((0, 2) if engine.dialect.name == "postgresql" else (2, 0))
    with Session(engine) as session:
        assert session.execute(select(Question.status, Question.processing_until)
                               .where(Question.id.in_(ids))).all() == [("drafted", None)] * 2
