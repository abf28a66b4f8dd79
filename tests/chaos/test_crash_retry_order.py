"""After a worker dies, the questions that were in its batch are retried alone, fewest attempts first:
a worker killed again and again for reasons of its own does not keep charging the same message."""
import pytest
from sqlmodel import Session

from consultant import finish, operator
from consultant.models import Question
from consultant.process import Processor
from support import make_settings, question_bytes

pytestmark = pytest.mark.chaos


class Killed(BaseException):
    """Stands for SIGKILL arriving while the worker reads a message: nothing on the way catches it."""


def test_the_message_a_worker_just_died_on_waits_behind_the_others(engine, db_url, monkeypatch):
    settings = make_settings(db_url, limits={"max_attempts": 3})
    with Session(engine) as session:
        ids = [operator.inject(session, question_bytes(n), "test", f"{n}.eml") for n in (1, 2, 3)]
        session.commit()
    real_parse, reads, kills = finish.parse_message, [], iter([True, True])

    def parse_or_die(raw, **limits):
        reads.append(next(n for n, qid in zip((1, 2, 3), ids) if f"<q{n}@".encode() in raw))
        if next(kills, False):
            raise Killed()
        return real_parse(raw, **limits)

    monkeypatch.setattr(finish, "parse_message", parse_or_die)
    for _ in range(4):  # a supervisor restarting the worker after each death
        with Processor(engine, settings) as processor:
            try:
                processor.run_until_done()
                break
            except Killed:
                pass
    # Killed in the batch while reading 1; then alone on 1 again; 2 and 3 go before 1's third try.
    assert reads == [1, 1, 2, 3, 1]
    with Session(engine) as session:
        assert [session.get(Question, qid).status for qid in ids] == ["drafted"] * 3
