"""Sending against a real aiosmtpd server (and Dovecot for the Sent folder): once, threaded, retried, failed."""
import email
import email.policy
import os
import secrets
import subprocess
import sys
from datetime import timedelta

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select, update
from sqlmodel import Session

from consultant import queries, review
from consultant.mailout import SentFolder
from consultant.models import Event, Question, Reply, utcnow
from consultant.send import Sender
from consultant.sweep import Sweeper
from servers.smtp import SmtpServer
from support import drafted, make_settings, question_bytes, smtp_section


class Crash(BaseException):
    """Stands for the process dying at that point."""


def approved(engine, settings, n=1, text=None) -> int:
    qid = drafted(engine, settings, question_bytes(n))
    with Session(engine) as session:
        review.approve(session, qid, "alice", 30, text=text)
        session.commit()
    return qid


def state(engine, qid):
    with Session(engine) as session:
        q = session.get(Question, qid)
        return q.status, q.reason, queries.reply(session, qid)


def make_due(engine):
    with Session(engine) as session:
        session.execute(update(Reply).values(next_attempt_at=utcnow()))
        session.commit()


def expire_leases(engine):
    with Session(engine) as session:
        session.execute(update(Reply).values(lease_until=utcnow() - timedelta(seconds=1)))
        session.commit()


@pytest.fixture
def out_settings(db_url, smtp):
    return make_settings(db_url, smtp=smtp_section(smtp), send={"backoff_first": "0.01s", "backoff_max": "0.02s"})


def test_an_approved_reply_arrives_once_threaded_with_text_and_html(engine, out_settings, smtp):
    qid = approved(engine, out_settings)
    assert Sender(engine, out_settings).run_once().sent == 1
    assert Sender(engine, out_settings).run_once().sent == 0
    [received] = smtp.wait_for(1)
    msg = email.message_from_bytes(received.raw, policy=email.policy.default)
    status, _, reply = state(engine, qid)
    assert status == "sent" and reply.sent_at is not None
    assert received.rcpt_tos == ("coder1@ridgeview-clinic.test",)
    assert received.mail_from == "ask@caseconsultant.test"
    assert msg["From"] == "CaseConsultant <ask@caseconsultant.test>"
    assert msg["Subject"] == "Re: myelogram question 1"
    assert msg["Message-ID"] == reply.message_id
    assert msg["In-Reply-To"] == "<q1@ridgeview-clinic.test>"
    assert msg["References"] == "<earlier1@ridgeview-clinic.test> <q1@ridgeview-clinic.test>"
    assert msg["X-CaseConsultant-Loop"] == "ask@caseconsultant.test"
    assert msg["X-Auto-Response-Suppress"] == "All" and msg["Auto-Submitted"] == "auto-replied"
    assert [p.get_content_type() for p in msg.walk()] == ["multipart/alternative", "text/plain", "text/html"]
    assert "62303" in msg.get_body(("plain",)).get_content()
    assert b"\r\n" in received.raw and b"\n\n" not in received.raw.replace(b"\r\n", b"")


def test_a_451_is_retried_with_backoff_then_sent(engine, out_settings, smtp):
    qid = approved(engine, out_settings)
    smtp.fail_next("MAIL", 451, "Try again later")
    counts = Sender(engine, out_settings).run_once()
    status, _, reply = state(engine, qid)
    assert (counts.retrying, status) == (1, "approved")
    assert reply.next_attempt_at is not None and "451" in reply.last_error
    with Session(engine) as session:
        session.execute(update(Reply).values(next_attempt_at=utcnow()))
        session.commit()
    assert Sender(engine, out_settings).run_once().sent == 1
    assert len(smtp.wait_for(1)) == 1
    assert state(engine, qid)[0] == "sent"


def test_temporary_failures_give_up_after_the_configured_time(engine, db_url, smtp):
    settings = make_settings(db_url, smtp=smtp_section(smtp), send={"give_up_after": "1s"})
    qid = approved(engine, settings)
    with Session(engine) as session:
        session.execute(update(Reply).values(first_attempt_at=utcnow() - timedelta(minutes=5)))
        session.commit()
    smtp.fail_next("RCPT", 451, "Mailbox busy")
    Sender(engine, settings).run_once()
    status, reason, _ = state(engine, qid)
    assert status == "failed" and "gave up" in reason and "451" in reason


def test_each_451_backs_off_exponentially_with_jitter_up_to_the_cap(engine, db_url, smtp):
    first, cap = 60, 300
    settings = make_settings(db_url, smtp=smtp_section(smtp),
                             send={"backoff_first": f"{first}s", "backoff_max": f"{cap}s"})
    qid = approved(engine, settings)
    fractions = []
    for attempt in range(1, 6):
        smtp.fail_next("MAIL", 451, "Greylisted")
        before = utcnow()
        assert Sender(engine, settings).run_once().retrying == 1
        after = utcnow()
        status, _, reply = state(engine, qid)
        assert (status, reply.send_attempts) == ("approved", attempt)
        # The delay was drawn at some instant between `before` and `after`: bound it both ways.
        full = min(cap, first * 2 ** (attempt - 1))
        shortest = (reply.next_attempt_at - after).total_seconds()
        longest = (reply.next_attempt_at - before).total_seconds()
        slack = (after - before).total_seconds()
        assert full / 2 - slack <= shortest and longest <= full + slack, (attempt, shortest, longest)
        fractions.append((shortest + longest) / 2 / full)
        make_due(engine)
    assert max(fractions) - min(fractions) > 0.001  # jitter: not the same fraction every time
    assert smtp.messages == []
    with Session(engine) as session:
        trail = session.execute(select(Event.reason).where(Event.question_id == qid, Event.action == "send",
                                                           Event.to_status == "approved")).scalars().all()
    assert len(trail) == 5 and all("SMTP 451: Greylisted" in why and "next try in" in why for why in trail)


def test_a_reply_that_drops_the_connection_mid_data_backs_off_then_fails(engine, db_url, smtp):
    settings = make_settings(db_url, smtp=smtp_section(smtp), send={"give_up_after": "1h"})
    qid = approved(engine, settings)
    smtp.drop_next("DATA")
    assert Sender(engine, settings).run_once().retrying == 1
    status, _, reply = state(engine, qid)
    assert (status, reply.send_attempts) == ("approved", 1)
    assert reply.next_attempt_at > utcnow() and "connection lost" in reply.last_error
    with Session(engine) as session:  # as if it had kept failing for longer than give_up_after
        session.execute(update(Reply).values(first_attempt_at=utcnow() - timedelta(hours=2),
                                             next_attempt_at=utcnow()))
        session.commit()
    smtp.drop_next("DATA")
    assert Sender(engine, settings).run_once().failed == 1
    status, reason, reply = state(engine, qid)
    assert status == "failed" and "gave up after 2 attempts" in reason and "connection lost" in reason
    assert smtp.messages == []
    assert Sender(engine, settings).run_once().sent == 0  # failed stays failed until `retry`


def test_a_dropped_connection_costs_only_its_own_reply_the_next_gets_a_new_connection(
        engine, out_settings, smtp):
    dropped, fine = approved(engine, out_settings, 1), approved(engine, out_settings, 2)
    smtp.drop_next("MAIL")
    counts = Sender(engine, out_settings).run_once()
    assert (counts.retrying, counts.sent) == (1, 1)
    assert [state(engine, qid)[0] for qid in (dropped, fine)] == ["approved", "sent"]
    assert smtp.connections == 2


def test_one_connection_serves_a_whole_batch(engine, out_settings, smtp):
    for n in range(5):
        approved(engine, out_settings, n)
    assert Sender(engine, out_settings).run_once().sent == 5
    assert len(smtp.wait_for(5)) == 5
    assert smtp.connections == 1


@pytest.fixture
def smtps():
    """An SMTP server that speaks TLS from the first byte (port 465 style), with AUTH."""
    with SmtpServer(tls=True, implicit_tls=True, username="consultant",
                    password=secrets.token_urlsafe(12)) as server:
        yield server


def test_implicit_tls_verifies_the_certificate_and_logs_in(engine, db_url, smtps):
    settings = make_settings(db_url, smtp=smtp_section(
        smtps, security="tls", cafile=smtps.cafile, host="localhost", username=smtps.username,
        password=smtps.password))
    for n in range(2):
        approved(engine, settings, n)
    assert Sender(engine, settings).run_once().sent == 2
    received = smtps.wait_for(2)
    assert all(m.tls and m.login == smtps.username for m in received)
    assert smtps.connections == 1


def test_implicit_tls_refuses_a_certificate_it_cannot_verify(engine, db_url, smtps):
    settings = make_settings(db_url, smtp=smtp_section(smtps, security="tls", host="localhost"))
    qid = approved(engine, settings)
    sender = Sender(engine, settings)
    assert sender.run_once().sent == 0
    assert sender.smtp_outage.down and state(engine, qid)[0] == "approved"
    assert smtps.messages == []


def test_a_550_fails_the_reply_with_the_servers_words(engine, out_settings, smtp):
    qid = approved(engine, out_settings)
    smtp.fail_next("RCPT", 550, "No such user here")
    assert Sender(engine, out_settings).run_once().failed == 1
    status, reason, _ = state(engine, qid)
    assert status == "failed" and "550" in reason and "No such user here" in reason
    assert smtp.messages == []


def test_smtp_down_changes_nothing_and_is_logged_once(engine, out_settings, smtp, caplog):
    qid = approved(engine, out_settings)
    with Session(engine) as session:
        events_before = len(session.execute(select(Event)).scalars().all())
    smtp.stop()
    try:
        sender = Sender(engine, out_settings)
        with caplog.at_level("WARNING", logger="consultant"):
            for _ in range(3):
                assert sender.run_once().sent == 0
    finally:
        smtp.start()
    status, _, reply = state(engine, qid)
    assert (status, reply.send_attempts) == ("approved", 0)
    with Session(engine) as session:
        assert len(session.execute(select(Event)).scalars().all()) == events_before
    assert len([r for r in caplog.records if "SMTP server unreachable" in r.getMessage()]) == 1
    assert sender.run_once().sent == 1


def test_a_rejection_notice_is_sent_when_asked_for(engine, out_settings, smtp):
    qid = drafted(engine, out_settings, question_bytes(1))
    with Session(engine) as session:
        review.reject(session, qid, "alice", "needs the chart", 30, notify=True,
                      templates=out_settings.templates_dir(), service_name="CaseConsultant",
                      domain="caseconsultant.test")
        session.commit()
    assert Sender(engine, out_settings).run_once().sent == 1
    [received] = smtp.wait_for(1)
    assert "not able to answer" in received.message.get_body(("plain",)).get_content()
    assert received.message["In-Reply-To"] == "<q1@ridgeview-clinic.test>"
    assert Sender(engine, out_settings).run_once().sent == 0


def test_starttls_and_auth_are_used_when_configured(engine, db_url, smtp):
    settings = make_settings(db_url, smtp=smtp_section(
        smtp, security="starttls", cafile=smtp.cafile, host="localhost", username=smtp.username,
        password=smtp.password))
    approved(engine, settings)
    assert Sender(engine, settings).run_once().sent == 1
    [received] = smtp.wait_for(1)
    assert received.tls and received.login == smtp.username


@pytest.fixture
def sent_settings(db_url, smtp, imap_user):
    return make_settings(db_url, imap_user, smtp=smtp_section(smtp, sent_folder="Sent"))


def sent_folder_copies(imap_user):
    with IMAPClient(imap_user.host, imap_user.port, ssl=False) as client:
        client.login(imap_user.username, imap_user.password)
        client.select_folder("Sent", readonly=True)
        uids = client.search(["NOT", "DELETED"])
        return [flags for flags in client.get_flags(uids).values()]


def test_with_a_sent_folder_every_reply_is_copied_there_marked_delivered(engine, sent_settings, smtp, imap_user):
    approved(engine, sent_settings)
    assert Sender(engine, sent_settings).run_once().sent == 1
    [flags] = sent_folder_copies(imap_user)
    assert b"$CCSent" in flags and b"$CCPending" not in flags


def test_a_crash_between_smtp_accept_and_the_database_update_sends_nothing_twice(
        engine, sent_settings, smtp, imap_user, monkeypatch):
    qid = approved(engine, sent_settings)

    def die(self, session, reply, counts):
        raise Crash()

    monkeypatch.setattr(Sender, "_sent", die)
    with pytest.raises(Crash):
        Sender(engine, sent_settings).run_once()
    monkeypatch.undo()
    assert state(engine, qid)[0] == "sending"
    expire_leases(engine)
    assert Sweeper(engine, sent_settings).run_once().confirmed_sent == 1
    assert Sender(engine, sent_settings).run_once().sent == 0
    assert state(engine, qid)[0] == "sent"
    assert len(smtp.messages) == 1


def test_a_crash_before_the_copy_is_marked_goes_to_failed_for_a_person_not_out_twice(
        engine, sent_settings, smtp, imap_user, monkeypatch):
    qid = approved(engine, sent_settings)

    def die(self, uid):
        raise Crash()

    monkeypatch.setattr(SentFolder, "mark_delivered", die)
    with pytest.raises(Crash):
        Sender(engine, sent_settings).run_once()
    monkeypatch.undo()
    expire_leases(engine)
    assert Sweeper(engine, sent_settings).run_once().unknown == 1
    status, reason, _ = state(engine, qid)
    assert status == "failed" and "may have reached the asker" in reason
    assert Sender(engine, sent_settings).run_once().sent == 0
    assert len(smtp.messages) == 1


def test_a_crash_after_the_copy_is_put_but_before_smtp_sends_it_again_exactly_once(
        engine, sent_settings, smtp, imap_user, monkeypatch):
    qid = approved(engine, sent_settings)
    monkeypatch.setattr(SentFolder, "mark_handed", lambda self, uid: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        Sender(engine, sent_settings).run_once()
    monkeypatch.undo()
    assert smtp.messages == [] and [b"$CCPending" in f for f in sent_folder_copies(imap_user)] == [True]
    expire_leases(engine)
    assert Sweeper(engine, sent_settings).run_once().resend == 1  # it never reached the server
    assert Sender(engine, sent_settings).run_once().sent == 1
    assert state(engine, qid)[0] == "sent" and len(smtp.messages) == 1
    [flags] = sent_folder_copies(imap_user)  # the unsent copy is gone, the delivered one stays
    assert b"$CCSent" in flags


def test_a_sent_folder_lost_after_the_envelope_sends_nothing_and_counts_no_attempt(
        engine, sent_settings, smtp, imap_user, monkeypatch):
    qid = approved(engine, sent_settings)
    monkeypatch.setattr(SentFolder, "mark_handed", lambda self, uid: (_ for _ in ()).throw(OSError("gone")))
    assert Sender(engine, sent_settings).run_once().sent == 0
    status, _, reply = state(engine, qid)
    assert (status, reply.send_attempts, smtp.messages, sent_folder_copies(imap_user)) == ("approved", 0, [], [])
    monkeypatch.undo()
    assert Sender(engine, sent_settings).run_once().sent == 1 and len(smtp.messages) == 1


def test_a_refused_reply_leaves_no_copy_in_the_sent_folder(engine, sent_settings, smtp, imap_user):
    approved(engine, sent_settings)
    smtp.fail_next("RCPT", 550, "No such user")
    Sender(engine, sent_settings).run_once()
    assert sent_folder_copies(imap_user) == []


def test_without_a_sent_folder_a_crash_resends_with_the_same_message_id(engine, out_settings, smtp, monkeypatch):
    qid = approved(engine, out_settings)
    monkeypatch.setattr(Sender, "_sent", lambda self, session, reply, counts: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        Sender(engine, out_settings).run_once()
    monkeypatch.undo()
    expire_leases(engine)
    assert Sweeper(engine, out_settings).run_once().resend == 1
    assert Sender(engine, out_settings).run_once().sent == 1
    first, second = smtp.wait_for(2)
    assert first.message["Message-ID"] == second.message["Message-ID"]
    assert state(engine, qid)[0] == "sent"


@pytest.mark.postgres
def test_two_send_processes_on_postgresql_share_the_work_and_never_send_the_same_reply(pg_url, smtp):
    from consultant.db import make_engine

    engine = make_engine(pg_url)
    settings = make_settings(pg_url, smtp=smtp_section(smtp))
    for n in range(40):
        approved(engine, settings, n)
    engine.dispose()
    # Small batches, so each process goes back for more; and no DATA is answered until both
    # processes are connected, so they overlap whatever the scheduler does: while the first holds
    # one claim, the second finds the rest due.
    smtp.hold_data_until(connections=2)
    env = dict(os.environ, CONSULTANT_DATABASE__URL=pg_url, CONSULTANT_SMTP__HOST=smtp.host,
               CONSULTANT_SMTP__PORT=str(smtp.port), CONSULTANT_SMTP__SECURITY="plain",
               CONSULTANT_SEND__BATCH_SIZE="5")
    procs = [subprocess.Popen([sys.executable, "-m", "consultant", "send", "--once"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    received = smtp.wait_for(40, timeout=20)
    ids = [m.message["Message-ID"] for m in received]
    assert len(ids) == 40 and len(set(ids)) == 40
    engine = make_engine(pg_url)
    with Session(engine) as session:
        statuses = session.execute(select(Question.status)).scalars().all()
        per_sender = dict(session.execute(
            select(Event.actor, func.count()).where(Event.action == "send", Event.to_status == "sent")
            .group_by(Event.actor)).all())
    engine.dispose()
    assert statuses == ["sent"] * 40
    pids = {f":{p.pid}" for p in procs}
    assert {actor[actor.rfind(":"):] for actor in per_sender} == pids, per_sender
    assert all(n > 0 for n in per_sender.values()) and sum(per_sender.values()) == 40
    sent_lines = [line for out in outputs for line in out.splitlines() if line.startswith("sent ")]
    assert sorted(int(line.split()[1].rstrip(",")) for line in sent_lines) == sorted(per_sender.values())
