"""The state machine: only listed moves happen, each with an event, and races have one winner."""
import itertools
import threading

import pytest
from sqlalchemy import select
from sqlmodel import Session

from consultant import states
from consultant.models import Event, Question
from consultant.states import TRANSITIONS, IllegalTransition, Status

ALL_PAIRS = list(itertools.product(Status, Status))
LISTED = [(a, b) for a, b in ALL_PAIRS if b in TRANSITIONS[a]]
UNLISTED = [(a, b) for a, b in ALL_PAIRS if b not in TRANSITIONS[a]]


def new_question(session, status=Status.RECEIVED, key=None) -> int:
    qid = states.create(session, "test", dedupe_key=key or f"<{id(session)}-{status}-{len(key or '')}@t>",
                        message_id=None, size=1)
    if status != Status.RECEIVED:
        session.execute(Question.__table__.update().where(Question.id == qid).values(status=status.value))
    session.commit()
    return qid


def test_every_status_has_a_row_in_the_table():
    assert set(TRANSITIONS) == set(Status)


def test_sent_ignored_and_rejected_are_final():
    assert set(states.FINAL) == {Status.SENT, Status.IGNORED, Status.REJECTED}


@pytest.mark.parametrize("frm,to", UNLISTED, ids=[f"{a}->{b}" for a, b in UNLISTED])
def test_the_table_forbids_every_move_it_does_not_list(sqlite_engine, frm, to):
    with Session(sqlite_engine) as session:
        qid = new_question(session, frm, key=f"<{frm}-{to}@t>")
        with pytest.raises(IllegalTransition):
            states.transition(session, qid, frm, to, "test")
        assert session.get(Question, qid).status == frm


@pytest.mark.parametrize("frm,to", LISTED, ids=[f"{a}->{b}" for a, b in LISTED])
def test_every_listed_move_changes_the_status_and_writes_an_event(sqlite_engine, frm, to):
    with Session(sqlite_engine) as session:
        qid = new_question(session, frm, key=f"<{frm}-{to}@t>")
        assert states.transition(session, qid, frm, to, "alice", "because")
        session.commit()
        session.expire_all()
        assert session.get(Question, qid).status == to
        event = session.execute(select(Event).where(Event.question_id == qid).order_by(Event.id.desc())).scalars().first()
        assert (event.actor, event.from_status, event.to_status, event.reason) == ("alice", frm, to, "because")


def test_a_move_from_a_status_the_question_no_longer_has_changes_nothing(engine):
    with Session(engine) as session:
        qid = new_question(session, Status.DRAFTED, key="<stale@t>")
        assert not states.transition(session, qid, Status.RECEIVED, Status.PARSED, "worker")
        session.commit()
        assert session.get(Question, qid).status == Status.DRAFTED
        events = session.execute(select(Event).where(Event.question_id == qid)).scalars().all()
        assert [e.to_status for e in events] == ["received"]


def test_the_same_dedupe_key_is_stored_once(engine):
    with Session(engine) as session:
        first = states.create(session, "fetch", dedupe_key="<same@t>", size=1)
        second = states.create(session, "fetch", dedupe_key="<same@t>", size=1)
        session.commit()
        assert first is not None and second is None
        assert len(session.execute(select(Question)).scalars().all()) == 1


def test_two_racing_claims_leave_exactly_one_winner(engine):
    """Many rounds of two threads, each with its own connection, moving the same question."""
    for round_ in range(15):
        with Session(engine) as session:
            qid = new_question(session, Status.DRAFTED, key=f"<race-{round_}@t>")
        barrier = threading.Barrier(2)
        results = []

        def claim(name):
            with Session(engine) as session:
                barrier.wait()
                won = states.transition(session, qid, Status.DRAFTED, Status.IN_REVIEW, name, claimed_by=name)
                session.commit()
                results.append((name, won))

        threads = [threading.Thread(target=claim, args=(n,)) for n in ("alice", "bob")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [name for name, won in results if won]
        assert len(winners) == 1, results
        with Session(engine) as session:
            assert session.get(Question, qid).claimed_by == winners[0]
            events = session.execute(select(Event).where(Event.question_id == qid,
                                                         Event.to_status == "in_review")).scalars().all()
            assert [e.actor for e in events] == winners
