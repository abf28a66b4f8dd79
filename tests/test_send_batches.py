"""A batch claimed at once: outcomes committed one by one, a stop or an outage gives the untried
replies back, a lease lost while the batch stalled leaves the reply to the sweep, a connection the
server closed between replies costs nothing, and a crash mid-batch sends nothing twice."""
import logging
import smtplib
import time
from datetime import timedelta

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy import select, update
from sqlmodel import Session

from consultant.mailout import HANDED, PENDING, SentFolder
from consultant.models import Event, Reply, utcnow
from consultant.send import Connection, Sender
from consultant.sweep import Sweeper
from support import make_settings, smtp_section
from test_send import (  # noqa: F401 (fixtures)
    Crash,
    approved,
    expire_leases,
    out_settings,
    sent_settings,
    state,
)


@pytest.fixture
def between_replies():
    """between_replies(act): act(n) runs right after the sender committed its n-th reply as sent."""
    logger = logging.getLogger("consultant.vet")
    handlers, level = [], logger.level

    class Hook(logging.Handler):
        def __init__(self, act):
            super().__init__(logging.INFO)
            self.act, self.sent = act, 0

        def emit(self, record):
            if " sent to " in record.getMessage():
                self.sent += 1
                self.act(self.sent)

    def install(act):
        handlers.append(Hook(act))
        logger.addHandler(handlers[-1])
        logger.setLevel(logging.INFO)

    yield install
    for handler in handlers:
        logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def before_reply(monkeypatch):
    """before_reply(act): act(n) runs when the sender readies its connection for its n-th reply of a
    batch (n >= 2: the one before went out), before it looks at the connection."""
    def install(act):
        real, calls = Connection.ready, []

        def ready(self):
            calls.append(self)
            if len(calls) >= 3:  # the first call opens the connection, the second readies reply 1
                act(len(calls) - 1)
            return real(self)
        monkeypatch.setattr(Connection, "ready", ready)
    return install


def replies_of(engine, ids):
    with Session(engine) as session:
        return [session.execute(select(Reply).where(Reply.question_id == qid)).scalar_one() for qid in ids]


def test_a_batch_is_claimed_at_once_and_each_reply_committed_as_sent_when_the_server_took_it(
        engine, out_settings, smtp, between_replies):
    ids = [approved(engine, out_settings, n) for n in range(3)]
    sender = Sender(engine, out_settings)
    seen = {}
    between_replies(lambda n: seen.setdefault(n, [(state(engine, qid)[0], r.lease_owner, r.send_attempts)
                                                  for qid, r in zip(ids, replies_of(engine, ids))]))
    assert sender.run_once().sent == 3
    assert seen[1] == [("sent", None, 1), ("sending", sender.owner, 1), ("sending", sender.owner, 1)]
    assert seen[2][:2] == [("sent", None, 1), ("sent", None, 1)]
    with Session(engine) as session:
        trail = session.execute(select(Event.question_id, Event.from_status, Event.to_status).where(
            Event.action == "send").order_by(Event.id)).all()
    claims = [(qid, "approved", "sending") for qid in ids]
    assert trail[:3] == claims and sorted(trail[3:]) == [(qid, "sending", "sent") for qid in ids]
    assert smtp.connections == 1


def test_a_stop_mid_batch_lets_the_reply_going_out_finish_and_gives_the_untried_back_uncounted(
        engine, out_settings, smtp, between_replies):
    ids = [approved(engine, out_settings, n) for n in range(4)]
    sender = Sender(engine, out_settings)
    between_replies(lambda n: sender.stop.set())  # while the second reply is going out
    counts = sender.run_once()
    assert (counts.sent, counts.retrying, counts.skipped) == (2, 0, 0)
    assert [state(engine, qid)[0] for qid in ids] == ["sent", "sent", "approved", "approved"]
    assert [(r.send_attempts, r.lease_owner, r.lease_until) for r in replies_of(engine, ids)[2:]] == [(0, None, None)] * 2
    assert Sender(engine, out_settings).run_once().sent == 2
    assert sorted(m.message["Message-ID"] for m in smtp.wait_for(4)) == sorted(r.message_id for r in replies_of(engine, ids))


def sent_folder_bodies(imap_user) -> dict[bytes, tuple[bytes, tuple]]:
    """Message-ID -> (the copy's bytes, its flags), for every copy in the Sent folder not deleted."""
    with IMAPClient(imap_user.host, imap_user.port, ssl=False) as client:
        client.login(imap_user.username, imap_user.password)
        client.select_folder("Sent", readonly=True)
        found = client.fetch(client.search(["NOT", "DELETED"]), ["BODY.PEEK[]", "FLAGS"])
    ids = [next(line.split(b":", 1)[1].strip() for line in item[b"BODY[]"].split(b"\r\n")
                if line.lower().startswith(b"message-id:")) for item in found.values()]
    assert len(ids) == len(set(ids)), f"a reply has more than one copy: {ids}"
    return {mid: (item[b"BODY[]"], item[b"FLAGS"]) for mid, item in zip(ids, found.values())}


def test_with_a_sent_folder_a_stop_mid_batch_leaves_one_exact_copy_per_reply_sent_and_none_of_the_rest(
        engine, sent_settings, smtp, imap_user, between_replies):
    ids = [approved(engine, sent_settings, n) for n in range(4)]
    sender = Sender(engine, sent_settings)
    between_replies(lambda n: sender.stop.set())  # the third reply's copy is already put there by then
    assert sender.run_once().sent == 2
    assert [state(engine, qid)[0] for qid in ids] == ["sent", "sent", "approved", "approved"]
    copies = sent_folder_bodies(imap_user)
    received = {m.message["Message-ID"].encode(): m.raw for m in smtp.wait_for(2)}
    assert set(copies) == set(received)
    assert Sender(engine, sent_settings).run_once().sent == 2
    copies = sent_folder_bodies(imap_user)
    received = {m.message["Message-ID"].encode(): m.raw for m in smtp.wait_for(4)}
    assert set(copies) == set(received) and len(received) == 4
    for mid, (body, flags) in copies.items():  # the bytes that went out, CRLF and all
        assert body == received[mid] and b"$CCSent" in flags and b"$CCPending" not in flags


def test_a_connection_the_server_closed_between_replies_is_replaced_and_costs_nothing(
        engine, out_settings, smtp, before_reply):
    ids = [approved(engine, out_settings, n) for n in range(3)]

    def restart(n):
        if n == 2:
            smtp.stop()  # closes the connection the sender holds
            smtp.start()
    before_reply(restart)
    counts = Sender(engine, out_settings).run_once()
    assert (counts.sent, counts.retrying) == (3, 0)
    assert [r.send_attempts for r in replies_of(engine, ids)] == [1, 1, 1]
    assert len(smtp.wait_for(3)) == 3 and smtp.connections == 1  # connections: counted since the restart


def test_a_connection_idle_for_a_while_is_checked_with_noop_and_reused(engine, out_settings, smtp, monkeypatch):
    ids = [approved(engine, out_settings, n) for n in range(3)]
    noops = []
    real_noop = smtplib.SMTP.noop
    monkeypatch.setattr(Connection, "IDLE", 0.0)  # every reuse counts as idle
    monkeypatch.setattr(smtplib.SMTP, "noop", lambda self: noops.append(1) or real_noop(self))
    assert Sender(engine, out_settings).run_once().sent == 3
    assert len(noops) >= 2 and smtp.connections == 1
    assert [r.send_attempts for r in replies_of(engine, ids)] == [1, 1, 1]


def test_smtp_lost_mid_batch_is_an_outage_and_the_untried_replies_go_back(engine, out_settings, smtp, before_reply):
    ids = [approved(engine, out_settings, n) for n in range(3)]
    before_reply(lambda n: n == 2 and smtp.stop())
    sender = Sender(engine, out_settings)
    try:
        counts = sender.run_once()
    finally:
        smtp.start()
    assert (counts.sent, counts.retrying, counts.failed) == (1, 0, 0) and sender.smtp_outage.down
    assert [state(engine, qid)[0] for qid in ids] == ["sent", "approved", "approved"]
    assert [r.send_attempts for r in replies_of(engine, ids)] == [1, 0, 0]
    assert Sender(engine, out_settings).run_once().sent == 2


def test_leases_are_renewed_while_a_batch_lasts_and_one_that_ran_out_is_left_to_the_sweep(
        engine, db_url, smtp, between_replies):
    settings = make_settings(db_url, smtp=smtp_section(smtp), send={"lease": "1s"})
    ids = [approved(engine, settings, n) for n in range(5)]
    lease_of_last = []

    def stall(n):  # runs while the next reply's MAIL is answered
        lease_of_last.append(replies_of(engine, ids[-1:])[0].lease_until)
        if n == 1:  # as if this worker had hung: the sweep may now settle the third
            with Session(engine) as session:
                session.execute(update(Reply).where(Reply.question_id == ids[2])
                                .values(lease_until=utcnow() - timedelta(seconds=1)))
                session.commit()
            time.sleep(0.15)  # more than a tenth of the lease: the third reply renews first
    between_replies(stall)
    counts = Sender(engine, settings).run_once()
    assert (counts.sent, counts.skipped) == (4, 1)
    assert lease_of_last[0] < lease_of_last[2]  # read while the 2nd and the 5th replies went out
    assert [state(engine, qid)[0] for qid in ids] == ["sent", "sent", "sending", "sent", "sent"]
    expire_leases(engine)
    assert Sweeper(engine, settings).run_once().resend == 1
    assert Sender(engine, settings).run_once().sent == 1
    received = [m.message["Message-ID"] for m in smtp.wait_for(5)]
    assert sorted(received) == sorted(r.message_id for r in replies_of(engine, ids))


def test_a_crash_mid_batch_with_a_sent_folder_sends_each_reply_exactly_once(
        engine, sent_settings, smtp, imap_user, monkeypatch):
    ids = [approved(engine, sent_settings, n) for n in range(3)]
    real, calls = Sender._sent, []

    def second_dies(self, conn, reply, counts):
        calls.append(reply.id)
        if len(calls) == 2:
            raise Crash()
        real(self, conn, reply, counts)
    monkeypatch.setattr(Sender, "_sent", second_dies)
    with pytest.raises(Crash):
        Sender(engine, sent_settings).run_once()
    monkeypatch.undo()
    assert [state(engine, qid)[0] for qid in ids] == ["sent", "sending", "sending"]
    expire_leases(engine)
    swept = Sweeper(engine, sent_settings).run_once()
    assert (swept.confirmed_sent, swept.resend, swept.unknown) == (1, 1, 0)
    assert Sender(engine, sent_settings).run_once().sent == 1
    assert [state(engine, qid)[0] for qid in ids] == ["sent"] * 3
    received = sorted(m.message["Message-ID"] for m in smtp.wait_for(3))
    assert received == sorted(r.message_id for r in replies_of(engine, ids)) and len(smtp.messages) == 3


def test_a_copy_the_folder_view_does_not_hold_yet_is_still_marked_and_an_unknown_one_is_refused(imap_user):
    def login():
        client = IMAPClient(imap_user.host, imap_user.port, ssl=False)
        client.login(imap_user.username, imap_user.password)
        return client
    ours, other = login(), login()
    try:
        folder = SentFolder(ours, "Sent")
        first = folder.put_pending(b"Message-ID: <a@x.test>\r\n\r\nfirst\r\n", "<a@x.test>")
        folder.mark_handed(first)  # selects the folder
        # A copy the selected view has not seen (put there by another session): SELECT, then mark.
        response = other.append("Sent", b"Message-ID: <b@x.test>\r\n\r\nsecond\r\n", flags=[PENDING])
        second = int(response.split(b"APPENDUID ")[1].split()[1].rstrip(b"]"))
        folder.mark_handed(second)
        flags = ours.get_flags([first, second])
        assert HANDED in flags[first] and HANDED in flags[second]
        with pytest.raises(IMAPClientError):
            folder.mark_handed(second + 100)
    finally:
        ours.logout()
        other.logout()


def test_a_sent_folder_lost_once_a_reply_went_out_sends_nothing_twice_and_is_logged_once(
        engine, sent_settings, smtp, imap_user, monkeypatch, caplog):
    ids = [approved(engine, sent_settings, n) for n in range(2)]
    real, calls = SentFolder.mark_delivered, []

    def first_fails(self, uid):
        calls.append(uid)
        if len(calls) == 1:
            raise OSError("gone")
        real(self, uid)
    monkeypatch.setattr(SentFolder, "mark_delivered", first_fails)
    sender = Sender(engine, sent_settings)
    with caplog.at_level("WARNING", logger="consultant"):
        assert sender.run_once().sent == 2  # the database knows the first was sent
    assert len([r for r in caplog.records if "Sent folder" in r.getMessage()]) == 1
    assert [state(engine, qid)[0] for qid in ids] == ["sent", "sent"]
    expire_leases(engine)
    assert Sweeper(engine, sent_settings).run_once().unknown == 0
    assert Sender(engine, sent_settings).run_once().sent == 0 and len(smtp.wait_for(2)) == 2
    flags = [f for _, f in sent_folder_bodies(imap_user).values()]
    assert sorted(b"$CCSent" in f for f in flags) == [False, True]  # the first copy stays handed


def test_a_copy_put_ahead_that_fails_gives_its_reply_back_untried_and_uncounted(
        engine, sent_settings, smtp, imap_user, monkeypatch):
    ids = [approved(engine, sent_settings, n) for n in range(3)]
    real, calls = SentFolder.put_pending, []

    def second_fails(self, data, message_id):  # the second is put while the first goes out
        calls.append(message_id)
        if len(calls) == 2:
            raise OSError("gone")
        return real(self, data, message_id)
    monkeypatch.setattr(SentFolder, "put_pending", second_fails)
    sender = Sender(engine, sent_settings)
    assert sender.run_once().sent == 1 and sender.imap_outage.down
    assert [state(engine, qid)[0] for qid in ids] == ["sent", "approved", "approved"]
    assert [r.send_attempts for r in replies_of(engine, ids)] == [1, 0, 0]
    assert len(smtp.wait_for(1)) == 1 and len(sent_folder_bodies(imap_user)) == 1
    monkeypatch.undo()
    assert Sender(engine, sent_settings).run_once().sent == 2
    received = {m.message["Message-ID"].encode() for m in smtp.wait_for(3)}
    assert len(smtp.messages) == 3 and set(sent_folder_bodies(imap_user)) == received
