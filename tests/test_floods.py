"""Loops and floods end to end: machine mail and our own replies get no draft, the per-sender and
global limits hold back exactly what is over them, and the operator sees what they held back."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlmodel import Session

from consultant import operator, recent, review
from consultant.models import Question, Reply, utcnow
from consultant.process import Processor
from consultant.send import Sender
from mailbuild import entity, mail, multipart, text
from support import drafted, make_settings, query_plans, question_bytes, recorded, smtp_section
from websupport import add_people, post, signed_in, web_settings

OURS = "ask@caseconsultant.test"  # service.address by default
LOOP = "X-CaseConsultant-Loop"  # service.loop_header by default
BODY = text("Can I bill 62303 with 72128, and do I need modifier 59?\n")
DSN = multipart("report", text("Delivery to the following recipient failed.\n"),
                entity("message/delivery-status", b"Reporting-MTA: dns; mx.clinic.test\r\n\r\n"
                       b"Final-Recipient: rfc822; coder@clinic.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"),
                boundary="dsn")
# Each kind of mail that must never get an answer, as it would arrive.
MACHINE_MAIL = {
    "Auto-Submitted": dict(Auto_Submitted="auto-replied"),
    "X-Autoreply": dict(X_Autoreply="yes"),
    "X-Autorespond": dict(X_Autorespond="on vacation"),
    "autoreply subject": dict(Subject="Out of Office: Coding question"),
    "null Return-Path": dict(Return_Path="<>"),
    "multipart/report": dict(top=DSN, From="Mail Delivery Subsystem <mailer@mx.clinic.test>"),
    "MAILER-DAEMON": dict(From="Mail Delivery System <MAILER-DAEMON@mx.clinic.test>"),
    "List-Id": dict(List_Id="Coders <coders.lists.test>"),
    "our own address": dict(From=f"CaseConsultant <{OURS}>"),
    "our own address, other case": dict(From="ASK@CaseConsultant.TEST"),
    "our loop header": dict(**{LOOP.replace("-", "_"): OURS}),
    "Precedence bulk": dict(Precedence="bulk"),
}


def store(engine, raw: bytes) -> int:
    with Session(engine) as session:
        qid = operator.inject(session, raw, "test", "flood.eml")
        session.commit()
    return qid


def process(engine, settings) -> None:
    with Processor(engine, settings) as processor:
        processor.run_until_done()


def rows(engine, ids) -> list[Question]:
    with Session(engine) as session:
        return [session.get(Question, qid) for qid in ids]


def replies(engine) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count(Reply.id))).scalar_one()


def asked_by(sender: str, n: int) -> bytes:
    return question_bytes(n, sender=sender)


def test_machine_mail_of_every_kind_gets_no_draft_while_a_question_beside_it_does(engine, db_url):
    settings = make_settings(db_url)
    ids = {}
    for n, (kind, headers) in enumerate(MACHINE_MAIL.items()):
        headers = dict(headers)
        ids[kind] = store(engine, mail(headers.pop("top", BODY), Message_ID=f"<m{n}@clinic.test>", **headers))
    person = store(engine, question_bytes(1))
    process(engine, settings)
    outcome = {kind: q.status for kind, q in zip(ids, rows(engine, ids.values()))}
    assert outcome == {kind: "ignored" for kind in MACHINE_MAIL}
    with Session(engine) as session:
        answered = session.execute(select(Reply.question_id)).scalars().all()
    assert answered == [person]


def test_a_flood_from_one_sender_gets_exactly_the_limit_of_drafts_whatever_the_case_of_the_address(
        engine, db_url):
    settings = make_settings(db_url, screen={"max_per_sender_per_hour": 3})
    spellings = ["jane@clinic.test", "Jane@Clinic.test", "JANE@CLINIC.TEST"]
    ids = [store(engine, asked_by(spellings[n % 3], n)) for n in range(8)]
    other = store(engine, asked_by("omar@clinic.test", 99))
    process(engine, settings)
    got = rows(engine, ids)
    assert [q.status for q in got] == ["drafted"] * 3 + ["ignored"] * 5
    assert {q.from_addr for q in got} == {"jane@clinic.test"}  # stored lower-case
    assert all(q.reason == "rate limit (3 questions from this sender in the last hour; limit 3)" for q in got[3:])
    assert rows(engine, [other])[0].status == "drafted"
    assert replies(engine) == 4


def test_a_flood_from_many_senders_drafts_exactly_the_global_limit_and_holds_the_rest_for_requeue(
        engine, db_url):
    settings = make_settings(db_url, screen={"max_per_hour": 4})
    ids = [store(engine, asked_by(f"coder{n}@clinic{n}.test", n)) for n in range(7)]
    process(engine, settings)
    got = rows(engine, ids)
    assert [q.status for q in got] == ["drafted"] * 4 + ["quarantined"] * 3
    assert replies(engine) == 4
    held = got[4]
    assert held.stage == "screen" and held.from_addr == "coder4@clinic4.test"
    assert held.reason == ("global rate limit: 4 questions from all senders in the last hour "
                           "(screen.max_per_hour = 4); held back, requeue to answer it")
    # The flood goes on; an operator requeues one held question: it is answered, not held again.
    with Session(engine) as session:
        operator.requeue(session, ids[5], "olivia")
        session.commit()
    late = store(engine, asked_by("late@clinic.test", 50))
    process(engine, settings)
    assert [q.status for q in rows(engine, [ids[4], ids[5], ids[6], late])] == [
        "quarantined", "drafted", "quarantined", "quarantined"]
    # An hour on, the window is clear again and new mail is answered.
    with Session(engine) as session:
        session.execute(update(Question).values(arrived_at=utcnow() - timedelta(minutes=61)))
        session.commit()
    fresh = store(engine, asked_by("fresh@clinic.test", 60))
    process(engine, settings)
    assert rows(engine, [fresh])[0].status == "drafted"


def test_the_limits_of_zero_switch_them_off(engine, db_url):
    settings = make_settings(db_url, screen={"max_per_hour": 0, "max_per_sender_per_hour": 0})
    ids = [store(engine, asked_by("jane@clinic.test", n)) for n in range(3)]
    process(engine, settings)
    assert [q.status for q in rows(engine, ids)] == ["drafted"] * 3


def test_a_reply_we_sent_fed_back_into_our_inbox_is_ignored_at_every_layer(engine, db_url, smtp):
    settings = make_settings(db_url, smtp=smtp_section(smtp))
    qid = drafted(engine, settings, question_bytes(7))
    with Session(engine) as session:
        review.approve(session, qid, "alice", 30)
        session.commit()
    assert Sender(engine, settings, owner="sender-1").run_once().sent == 1
    [received] = smtp.wait_for(1)
    sent = received.message
    assert (sent["Auto-Submitted"], sent["X-Auto-Response-Suppress"], sent[LOOP]) == ("auto-replied", "All", OURS)
    assert sent["From"].addresses[0].addr_spec == OURS
    head, sep, body = received.raw.partition(b"\r\n\r\n")

    def echo(n: int, drop: tuple[str, ...], *add: str) -> bytes:
        """The reply as it might come back through a forwarder: some fields gone, some new."""
        gone = {name.lower().encode() for name in (*drop, "Message-ID")}
        kept = [line for line in re.split(rb"\r\n(?![ \t])", head) if line.split(b":", 1)[0].lower() not in gone]
        added = [f"Message-ID: <echo{n}@clinic.test>".encode(), *(a.encode() for a in add)]
        return b"\r\n".join(added + kept) + sep + body

    # As sent; then with the auto-reply fields dropped; then also with From rewritten by the
    # forwarder: only the loop header is left to catch it.
    auto = ("Auto-Submitted", "X-Auto-Response-Suppress")
    echoes = [received.raw, echo(2, auto), echo(3, (*auto, "From"), "From: forwarder@clinic.test")]
    ids = [store(engine, raw) for raw in echoes]
    assert None not in ids
    process(engine, settings)
    got = rows(engine, ids)
    assert [q.status for q in got] == ["ignored"] * 3
    assert [q.reason.split(" (")[0] for q in got] == ["auto-reply", "our own mail", "mail loop"]
    assert replies(engine) == 1


def test_the_counting_queries_read_indexes_not_the_whole_question_table(sqlite_engine):
    settings = make_settings(str(sqlite_engine.url))
    for n in range(3):
        drafted(sqlite_engine, settings, asked_by("jane@clinic.test", n))
    with recorded(sqlite_engine) as seen, Session(sqlite_engine) as session:
        asked = recent.history(session, 3)  # the two that came in before it count
        counts = (asked["recent_from_sender"]("Jane@Clinic.test"), asked["recent_overall"](), asked["released"]())
    assert counts == (2, 2, False)
    statements = [(sql, params) for sql, params in seen if sql.lstrip().upper().startswith("SELECT")]
    plans = query_plans(sqlite_engine, statements)
    assert len(statements) == 5  # its arrival; the sender's; all passed; its last event, a requeue?
    assert [line for line in plans if re.search(r"\bSCAN (question|event)\b", line)] == []
    assert any("ix_question_sender_arrived" in line for line in plans)
    assert any("ix_question_status_arrived" in line for line in plans)


@pytest.fixture
def olivia(engine, db_url):
    settings = web_settings(db_url, screen={"max_per_hour": 2, "max_per_sender_per_hour": 2})
    add_people(engine, {"olivia": "operator"})
    return settings, signed_in(settings, engine, "olivia")


def test_the_operator_page_counts_and_lists_what_each_limit_held_back(engine, olivia):
    settings, client = olivia
    jane = [store(engine, asked_by("jane.doe@clinic.test", n)) for n in range(3)]
    others = [store(engine, asked_by(f"asker{n}@clinic{n}.test", n + 10)) for n in range(2)]
    process(engine, settings)
    assert [q.status for q in rows(engine, jane + others)] == [
        "drafted", "drafted", "ignored", "quarantined", "quarantined"]
    html = client.get("/operator").text
    section = html[html.index('id="held-back"'):html.index('id="requeue-list"')]
    figures = {name: [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', row)]
               for name, row in re.findall(r'<tr class="held-(\w+)">(.*?)</tr>', section)}
    assert figures == {"per_sender": [1, 1], "overall": [2, 2], "sender_auth": [0, 0]}
    assert "screen.max_per_hour" in section and "screen.max_per_sender_per_hour" in section
    listed = [int(i) for i in re.findall(r'<a href="/questions/(\d+)">', section)]
    assert sorted(listed) == sorted([jane[2], *others])
    assert "j***@clinic.test" in section and "a***@clinic0.test" in section
    assert "jane.doe@" not in section and "asker0@" not in section
    # Requeued from the page, the held question is answered and listed as drafted now.
    assert post(client, f"/operator/requeue/{others[0]}", page="/operator").status_code == 303
    process(engine, settings)
    assert rows(engine, [others[0]])[0].status == "drafted"
    section = client.get("/operator").text.split('id="held-back"', 1)[1]
    assert re.search(rf'/questions/{others[0]}">{others[0]}</a>.*?<td>drafted</td>', section)
