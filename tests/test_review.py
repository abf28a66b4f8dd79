"""Review: claims are leases, one reviewer at a time, every action recorded with its actor."""
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlmodel import Session

from consultant import operator, queries, review
from consultant.errors import ConsultantError
from consultant.models import Event, Question, utcnow
from consultant.review import ReviewError
from consultant.sweep import Sweeper
from support import drafted, make_settings, question_bytes

# alice and bob are reviewers; olivia is an operator.
MINUTES = 30


@pytest.fixture
def qid(engine, db_url):
    return drafted(engine, make_settings(db_url), question_bytes(1))


def status(engine, qid):
    with Session(engine) as session:
        return session.get(Question, qid).status


def actions(engine, qid):
    with Session(engine) as session:
        return [(e.actor, e.action, e.to_status) for e in
                session.execute(select(Event).where(Event.question_id == qid).order_by(Event.id)).scalars()]


def test_a_claim_is_a_lease_held_by_one_reviewer(engine, qid):
    with Session(engine) as session:
        q = review.claim(session, qid, "alice", MINUTES)
        session.commit()
        assert (q.status, q.claimed_by) == ("in_review", "alice")
        with pytest.raises(ReviewError, match="claimed by alice"):
            review.claim(session, qid, "bob", MINUTES)
        review.claim(session, qid, "alice", MINUTES)  # her own claim: renewed
        session.commit()
    assert ("alice", "renew", None) in actions(engine, qid)


def test_a_reviewer_cannot_approve_what_someone_else_has_claimed(engine, qid):
    with Session(engine) as session:
        review.claim(session, qid, "alice", MINUTES)
        session.commit()
        with pytest.raises(ReviewError, match="claimed by alice"):
            review.approve(session, qid, "bob", MINUTES)
    assert status(engine, qid) == "in_review"


def test_approving_an_unclaimed_draft_claims_it_first_and_records_both(engine, qid):
    with Session(engine) as session:
        review.approve(session, qid, "alice", MINUTES)
        session.commit()
    assert status(engine, qid) == "approved"
    assert actions(engine, qid)[-2:] == [("alice", "claim", "in_review"), ("alice", "approve", "approved")]


def test_an_edit_is_kept_beside_the_original_draft(engine, qid):
    with Session(engine) as session:
        original = queries.reply(session, qid).text
        review.approve(session, qid, "bob", MINUTES, text="Yes, 62303 and 72128 can go together.\r\n")
        session.commit()
        reply = queries.reply(session, qid)
        assert reply.text == original
        assert (reply.edited_text, reply.edited_by) == ("Yes, 62303 and 72128 can go together.\n", "bob")
    assert ("bob", "edit", None) in actions(engine, qid)


def test_an_empty_edit_is_refused(engine, qid):
    with Session(engine) as session:
        with pytest.raises(ReviewError, match="empty"):
            review.approve(session, qid, "bob", MINUTES, text="  \n ")


def test_rejecting_needs_a_reason_and_can_queue_a_notice(engine, qid):
    settings = make_settings()
    with Session(engine) as session:
        with pytest.raises(ReviewError, match="reason is required"):
            review.reject(session, qid, "alice", "   ", MINUTES)
        review.reject(session, qid, "alice", "needs the chart", MINUTES, notify=True,
                      templates=settings.templates_dir(), service_name="CaseConsultant",
                      domain="caseconsultant.test")
        session.commit()
        q = session.get(Question, qid)
        notice = queries.reply(session, qid, "notice")
    assert (q.status, q.reason) == ("rejected", "needs the chart")
    assert notice.kind == "rejected" and notice.to_send and "not able to answer" in notice.text
    assert notice.in_reply_to == "<q1@ridgeview-clinic.test>"


def test_only_the_holder_releases_a_live_claim_unless_forced(engine, qid):
    with Session(engine) as session:
        review.claim(session, qid, "alice", MINUTES)
        session.commit()
        with pytest.raises(ReviewError, match="only they can release"):
            review.release(session, qid, "bob")
        assert review.release(session, qid, "olivia", force=True) == "alice"
        session.commit()
    assert status(engine, qid) == "drafted"
    assert actions(engine, qid)[-1] == ("olivia", "force-release", "drafted")
    with Session(engine) as session:  # her own claim: an ordinary release, force or not
        review.claim(session, qid, "alice", MINUTES)
        assert review.release(session, qid, "alice", force=True) is None
        session.commit()
    assert actions(engine, qid)[-1] == ("alice", "release", "drafted")


def test_the_sweep_releases_a_stale_claim_and_a_new_reviewer_can_take_it(engine, db_url, qid):
    with Session(engine) as session:
        review.claim(session, qid, "alice", MINUTES)
        session.execute(update(Question).where(Question.id == qid)
                        .values(claimed_until=utcnow() - timedelta(hours=1)))
        session.commit()
    assert Sweeper(engine, make_settings(db_url)).run_once().released == 1
    assert status(engine, qid) == "drafted"
    with Session(engine) as session:
        review.claim(session, qid, "bob", MINUTES)
        session.commit()
    assert ("sweep", "release", "drafted") in actions(engine, qid)


def test_an_expired_claim_can_be_taken_over_before_the_sweep(engine, qid):
    with Session(engine) as session:
        review.claim(session, qid, "alice", MINUTES)
        session.execute(update(Question).where(Question.id == qid)
                        .values(claimed_until=utcnow() - timedelta(hours=1)))
        session.commit()
        review.approve(session, qid, "bob", MINUTES)
        session.commit()
    assert status(engine, qid) == "approved"


def test_nothing_but_a_failed_reply_can_be_retried(engine, qid):
    with Session(engine) as session:
        with pytest.raises(ConsultantError, match="only failed replies"):
            operator.retry(session, qid, "olivia")
