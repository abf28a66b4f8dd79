"""Extra drafting processes (consultant.pool): the same drafts as the worker alone, and nothing lost
or answered twice when one of them dies mid-batch."""
import os
import signal
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlmodel import Session

from consultant import operator, pool
from consultant.models import Question, Reply, utcnow
from consultant.process import Processor
from support import make_settings, question_bytes, recorded

N = 120  # three chunks for each side at least


def questions(engine, prefix: str) -> list[int]:
    bodies = ["Can I bill 62303 with 72128, and do I need modifier 59? Dx M54.16",
              "Is 99214-25 with 20610 right for the knee? Dx M17.11", "What is J1100 x3 with 96372?",
              "Nothing coded here, just a question about the fee schedule."]
    with Session(engine) as session:
        ids = [operator.inject(session, question_bytes(n, bodies[n % 4], sender=f"{prefix}{n}@clinic.test")
                               .replace(b"<q", f"<{prefix}".encode()), "test", "t.eml") for n in range(N)]
        session.commit()
    return ids


def drafts(engine, ids) -> list[tuple]:
    """What a reviewer sees of each question: its status, codes and reply (its Message-ID is random)."""
    with Session(engine) as session:
        rows = {q.id: q for q in session.execute(select(Question).where(Question.id.in_(ids))).scalars()}
        replies = {r.question_id: r for r in session.execute(select(Reply).where(Reply.question_id.in_(ids))).scalars()}
        return [(rows[i].status, rows[i].codes, rows[i].analysis, replies[i].kind, replies[i].subject,
                 replies[i].text, replies[i].html) for i in ids]


def run(engine, settings, warm: bool = False) -> Processor:
    processor = Processor(engine, settings)
    if warm:
        processor.pool.warm(N)
        assert processor.pool.wait_ready(60)
    processor.run_until_done()
    return processor


def test_extra_processes_draft_what_the_worker_alone_drafts(engine, db_url):
    alone = questions(engine, "alone")
    with run(engine, make_settings(db_url, worker={"processes": 0})) as processor:
        assert processor.pool.helpers == [] and processor.pool.shared == 0
    shared = questions(engine, "share")
    with run(engine, make_settings(db_url, worker={"processes": 1}), warm=True) as processor:
        assert processor.pool.shared > 0  # the extra process drafted some (or all) of them
    mine, theirs = drafts(engine, alone), drafts(engine, shared)
    assert [d[0] for d in mine] == ["drafted"] * N
    assert mine == theirs  # the same codes, checks and replies


def test_a_drafting_process_that_dies_loses_nothing_and_answers_nothing_twice(engine, db_url, monkeypatch, caplog):
    ids = questions(engine, "kill")
    killed = []
    real_send = pool.Helper.send

    def send_then_die(self, *args):
        real_send(self, *args)
        if not killed:  # it dies holding the first chunk it was given
            os.kill(self.process.pid, signal.SIGKILL)
            killed.append(self.process.pid)

    monkeypatch.setattr(pool.Helper, "send", send_then_die)
    with run(engine, make_settings(db_url, worker={"processes": 1}), warm=True):
        pass
    assert killed
    assert "extra drafting process stopped" in caplog.text
    with Session(engine) as session:
        statuses = session.execute(select(Question.status, func.count()).where(Question.id.in_(ids))
                                   .group_by(Question.status)).all()
        replies = session.execute(select(func.count(Reply.id), func.count(Reply.question_id.distinct()))
                                  .where(Reply.question_id.in_(ids))).one()
    assert dict(statuses) == {"drafted": N}  # the dead process's questions were tried again
    assert tuple(replies) == (N, N)


def verdicts(engine, ids) -> list[tuple]:
    with Session(engine) as session:
        rows = {q.id: q for q in session.execute(select(Question).where(Question.id.in_(ids))).scalars()}
        answered = set(session.execute(select(Reply.question_id).where(Reply.question_id.in_(ids))).scalars())
    return [(rows[i].status, rows[i].stage, rows[i].from_addr, i in answered) for i in ids]


def test_rate_limits_are_asked_in_order_after_drafting_and_a_held_question_keeps_no_draft(engine, db_url):
    """The screen's rules that read the message run where the drafting runs (an extra process too);
    the rate limits are asked in the worker, in id order, once the batch is back."""
    def flood(prefix: str) -> list[int]:
        with Session(engine) as session:  # one sender, then everyone else: both limits in one batch
            ids = [operator.inject(session, question_bytes(n, sender=f"{prefix}-one@clinic.test" if n < 60 else
                                                           f"{prefix}{n}@clinic.test")
                                   .replace(b"<q", f"<{prefix}".encode()), "test", "t.eml") for n in range(N)]
            session.commit()
        return ids

    limits = {"max_per_sender_per_hour": 25, "max_per_hour": 70}
    alone = flood("al")
    with run(engine, make_settings(db_url, worker={"processes": 0}, screen=limits)):
        pass
    with Session(engine) as session:  # out of the next flood's hour, so it is counted afresh
        session.execute(update(Question).where(Question.id.in_(alone))
                        .values(arrived_at=utcnow() - timedelta(hours=2)))
        session.commit()
    shared = flood("sh")
    with run(engine, make_settings(db_url, worker={"processes": 1}, screen=limits), warm=True) as processor:
        assert processor.pool.shared > 0
    mine, theirs = verdicts(engine, alone), verdicts(engine, shared)
    assert [v[0] for v in mine[:25]] == ["drafted"] * 25 and all(v[3] for v in mine[:25])
    assert [v[:2] for v in mine[25:60]] == [("ignored", "screen")] * 35  # the one sender's flood
    assert not any(v[3] for v in mine[25:60])  # no draft kept for them
    assert [v[0] for v in mine[60:105]] == ["drafted"] * 45  # 25 + 45 = the global limit of 70
    assert [v[:2] for v in mine[105:]] == [("quarantined", "screen")] * (N - 105)
    assert all(v[2] and v[2].startswith("al") for v in mine[105:])  # held with its sender, for the operator
    assert [v[:2] + (v[3],) for v in mine] == [v[:2] + (v[3],) for v in theirs]


def test_the_worker_hands_out_its_first_batch_before_it_reads_its_code_index(engine, db_url):
    ids = questions(engine, "first")
    with Processor(engine, make_settings(db_url, worker={"processes": 1})) as processor:
        processor.pool.warm(N)
        assert processor.pool.wait_ready(60)
        with recorded(engine) as handing_out:
            assert processor.step()  # claimed, read and handed out; drafted meanwhile
        with recorded(engine) as finishing:
            processor.run_until_done()
    reads = ["GROUP BY code.system" in statement for statement, _ in handing_out + finishing]
    assert reads.count(True) == 1 and not any(reads[:len(handing_out)])
    assert [d[0] for d in drafts(engine, ids)] == ["drafted"] * N
