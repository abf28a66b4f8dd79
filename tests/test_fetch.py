"""Fetch against a real Dovecot: stored once, checkpointed, crash-safe, UIDVALIDITY-safe, size-limited."""
import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select
from sqlmodel import Session

from consultant import fetch as fetch_module
from consultant import states
from consultant.fetch import Fetcher, connect
from consultant.models import Checkpoint, Question, RawMessage
from support import make_settings


def question(n: int, message_id: bool = True, body: str = "Can I bill 62303 with 72128?") -> bytes:
    mid = f"Message-ID: <q{n}@ridgeview-clinic.test>\r\n" if message_id else ""
    return (f"From: Coder {n} <coder{n}@ridgeview-clinic.test>\r\nTo: ask@caseconsultant.test\r\n"
            f"Subject: question {n}\r\n{mid}Date: Mon, 2 Mar 2026 10:0{n % 10}:00 +0000\r\n\r\n"
            f"{body}\r\nquestion number {n}\r\n").encode()


def fetch_once(engine, settings, **kwargs):
    client = connect(settings.imap)
    try:
        return Fetcher(engine, settings, **kwargs).run_once(client)
    finally:
        client.logout()


def stored(engine) -> list[Question]:
    with Session(engine) as session:
        return session.execute(select(Question).order_by(Question.id)).scalars().all()


def raw_of(engine, qid) -> bytes:
    with Session(engine) as session:
        return session.get(RawMessage, qid).raw


@pytest.fixture
def mail_settings(db_url, imap_user):
    return make_settings(db_url, imap_user)


def test_new_messages_are_stored_with_their_imap_key_and_checkpoint(engine, mail_settings, dovecot, imap_user):
    for n in range(3):
        dovecot.deliver(imap_user, question(n))
    counts = fetch_once(engine, mail_settings)
    assert (counts.seen, counts.stored, counts.duplicates) == (3, 3, 0)
    rows = stored(engine)
    assert [q.uid for q in rows] == [1, 2, 3]
    assert [q.status for q in rows] == ["received"] * 3
    assert [q.message_id for q in rows] == [f"<q{n}@ridgeview-clinic.test>" for n in range(3)]
    assert raw_of(engine, rows[0].id).replace(b"\r\n", b"\n") == question(0).replace(b"\r\n", b"\n")
    with Session(engine) as session:
        point = session.get(Checkpoint, (mail_settings.imap.account_name(), "INBOX"))
        assert point.last_uid == 3 and point.uidvalidity == rows[0].uidvalidity
    assert fetch_once(engine, mail_settings).seen == 0  # nothing new above the checkpoint


def test_fetching_does_not_mark_mail_as_read(engine, db_url, dovecot, imap_user):
    # after_fetch = "flag" selects the mailbox read-write (SELECT, not EXAMINE): there a fetch of
    # BODY[] or RFC822 would set \Seen, and only BODY.PEEK[] leaves it alone.
    settings = make_settings(db_url, imap_user, imap={"after_fetch": "flag"})
    dovecot.deliver(imap_user, question(1))
    assert fetch_once(engine, settings).stored == 1
    with IMAPClient(imap_user.host, imap_user.port, ssl=False) as client:
        client.login(imap_user.username, imap_user.password)
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags([1])[1]
    assert b"$CaseConsultant" in flags  # the read-write select happened
    assert b"\\Seen" not in flags


def test_redelivery_of_the_same_message_id_is_stored_once(engine, mail_settings, dovecot, imap_user):
    dovecot.deliver(imap_user, question(1))
    dovecot.deliver(imap_user, question(1))
    counts = fetch_once(engine, mail_settings)
    assert (counts.stored, counts.duplicates) == (1, 1)
    dovecot.deliver(imap_user, question(1))
    assert fetch_once(engine, mail_settings).duplicates == 1
    assert len(stored(engine)) == 1


def test_a_message_without_message_id_is_deduplicated_by_its_bytes(engine, mail_settings, dovecot, imap_user):
    dovecot.deliver(imap_user, question(1, message_id=False))
    dovecot.deliver(imap_user, question(1, message_id=False))
    dovecot.deliver(imap_user, question(2, message_id=False))
    fetch_once(engine, mail_settings)
    rows = stored(engine)
    assert len(rows) == 2
    assert all(q.dedupe_key.startswith("sha256:") and q.message_id is None for q in rows)


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing on the way catches it."""


def test_a_crash_between_fetch_and_commit_loses_nothing_and_duplicates_nothing(
        engine, mail_settings, dovecot, imap_user, monkeypatch):
    for n in range(5):
        dovecot.deliver(imap_user, question(n))
    settings = make_settings(mail_settings.database.url, imap_user, imap={"batch_size": 2})
    real_create, calls = states.create_many, []

    def dying_create(session, actor, rows):
        calls.append(1)
        stored = real_create(session, actor, rows)
        if len(calls) == 2:  # the second batch's rows are written: batch one is committed
            raise Crash()
        return stored

    monkeypatch.setattr(states, "create_many", dying_create)
    with pytest.raises(Crash):
        fetch_once(engine, settings)
    assert [q.uid for q in stored(engine)] == [1, 2]  # the half-stored batch was rolled back
    monkeypatch.setattr(states, "create_many", real_create)
    fetch_once(engine, settings)
    rows = stored(engine)
    assert [q.uid for q in rows] == [1, 2, 3, 4, 5]
    assert len({q.dedupe_key for q in rows}) == 5


def test_a_crash_after_commit_before_the_server_action_duplicates_nothing(
        engine, mail_settings, dovecot, imap_user, monkeypatch):
    for n in range(3):
        dovecot.deliver(imap_user, question(n))
    settings = make_settings(mail_settings.database.url, imap_user, imap={"after_fetch": "flag"})

    def crash(self, client, uids):
        raise Crash()

    monkeypatch.setattr(Fetcher, "_after_fetch", crash)
    with pytest.raises(Crash):
        fetch_once(engine, settings)
    monkeypatch.undo()
    dovecot.deliver(imap_user, question(3))
    counts = fetch_once(engine, settings)
    assert (counts.seen, counts.stored) == (1, 1)
    assert [q.uid for q in stored(engine)] == [1, 2, 3, 4]


def test_a_uidvalidity_change_rereads_the_mailbox_without_duplicates(engine, mail_settings, dovecot, imap_user):
    dovecot.deliver(imap_user, question(1))
    dovecot.deliver(imap_user, question(2, message_id=False))
    fetch_once(engine, mail_settings)
    before = stored(engine)[0].uidvalidity
    dovecot.set_uidvalidity(imap_user, before + 1000)
    dovecot.deliver(imap_user, question(3))
    counts = fetch_once(engine, mail_settings)
    assert (counts.seen, counts.stored, counts.duplicates) == (3, 1, 2)
    rows = stored(engine)
    assert len(rows) == 3
    assert rows[-1].uidvalidity == before + 1000
    with Session(engine) as session:
        assert session.get(Checkpoint, (mail_settings.imap.account_name(), "INBOX")).uidvalidity == before + 1000


class RecordingClient(IMAPClient):
    """The real IMAPClient talking to the real Dovecot, noting every FETCH it sends."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fetches: list[tuple[list[int], list[str]]] = []

    def fetch(self, messages, data, modifiers=None):
        items = [data] if isinstance(data, (str, bytes)) else list(data)
        names = [(i.decode() if isinstance(i, bytes) else i).upper() for i in items]
        self.fetches.append((list(messages), names))
        return super().fetch(messages, data, modifiers)


def test_oversize_mail_is_quarantined_without_downloading_its_body(engine, db_url, dovecot, imap_user, monkeypatch):
    settings = make_settings(db_url, imap_user, limits={"max_message_bytes": 4000})
    dovecot.deliver(imap_user, question(1, body="BODY-MARKER " * 1000))
    dovecot.deliver(imap_user, question(2))
    monkeypatch.setattr(fetch_module, "IMAPClient", RecordingClient)
    client = connect(settings.imap)
    try:
        counts = Fetcher(engine, settings).run_once(client)
    finally:
        client.logout()
    assert isinstance(client, RecordingClient)
    assert (counts.stored, counts.oversize) == (2, 1)
    asked_of_big = [items for uids, items in client.fetches if 1 in uids]
    stub = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID FROM SUBJECT DATE)]"
    # Found too big by SEARCH LARGER, so only its header stub is asked for; never any form of the
    # whole message or its body.
    assert asked_of_big == [[stub, "INTERNALDATE", "RFC822.SIZE"]], asked_of_big
    assert [i for uids, items in client.fetches for i in items if 2 in uids] == ["BODY.PEEK[]", "INTERNALDATE", "RFC822.SIZE"]
    big, small = stored(engine)
    assert (big.status, big.stage, big.body_downloaded) == ("quarantined", "fetch", False)
    assert "over limits.max_message_bytes" in big.reason and big.size > 4000
    raw = raw_of(engine, big.id)
    assert b"BODY-MARKER" not in raw and b"question 1" in raw
    assert small.status == "received" and b"62303" in raw_of(engine, small.id)


def test_the_flag_action_marks_stored_mail_on_the_server(engine, db_url, dovecot, imap_user):
    settings = make_settings(db_url, imap_user, imap={"after_fetch": "flag", "flag": "$Answered"})
    dovecot.deliver(imap_user, question(1))
    fetch_once(engine, settings)
    with IMAPClient(imap_user.host, imap_user.port, ssl=False) as client:
        client.login(imap_user.username, imap_user.password)
        client.select_folder("INBOX", readonly=True)
        assert b"$Answered" in client.get_flags([1])[1]


def test_the_move_action_moves_stored_mail_to_the_folder(engine, db_url, dovecot, imap_user):
    settings = make_settings(db_url, imap_user, imap={"after_fetch": "move", "move_to": "Processed"})
    with IMAPClient(imap_user.host, imap_user.port, ssl=False) as client:
        client.login(imap_user.username, imap_user.password)
        client.create_folder("Processed")
    dovecot.deliver(imap_user, question(1))
    dovecot.deliver(imap_user, question(2))
    assert fetch_once(engine, settings).stored == 2
    with IMAPClient(imap_user.host, imap_user.port, ssl=False) as client:
        client.login(imap_user.username, imap_user.password)
        assert client.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"] == 0
        assert client.folder_status("Processed", [b"MESSAGES"])[b"MESSAGES"] == 2
    with Session(engine) as session:
        assert session.execute(select(func.count(Question.id))).scalar_one() == 2


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_fetch_connects_over_tls_and_starttls_verifying_the_certificate(db_url, dovecot, imap_user, security):
    port = imap_user.tls_port if security == "tls" else imap_user.port
    settings = make_settings(db_url, imap_user, imap={"security": security, "port": port,
                                                      "cafile": imap_user.cafile, "host": "localhost"})
    client = connect(settings.imap)
    try:
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 0
    finally:
        client.logout()


def test_tls_refuses_a_certificate_it_cannot_verify(db_url, dovecot, imap_user):
    import ssl
    settings = make_settings(db_url, imap_user, imap={"security": "tls", "port": imap_user.tls_port})
    with pytest.raises(ssl.SSLError):
        connect(settings.imap)
