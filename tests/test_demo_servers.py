"""The embedded demo servers, driven by real imapclient and smtplib clients."""

from __future__ import annotations

import email
import email.policy
import smtplib
import socket
import threading
from email.message import EmailMessage

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from consultant.demo_servers import DemoImapServer, DemoServerError, DemoSmtpSink

USER, PASSWORD = "consult@example.test", "demo-secret"


def make_message(n: int, body_size: int = 3000) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"asker{n}@example.test"
    msg["To"] = USER
    msg["Subject"] = f"Question {n}: is 99213-25 billable with J1100 x2?"
    msg["Message-ID"] = f"<question-{n}@example.test>"
    msg.set_content(("Can I bill 99213 with modifier 25 and J1100 x2 on the same day? " * 60)[:body_size])
    return msg.as_bytes(policy=email.policy.SMTP)


def connect(server: DemoImapServer) -> IMAPClient:
    client = IMAPClient(server.host, server.port, ssl=False, timeout=5)
    client.login(USER, PASSWORD)
    return client


def demo_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "demo-imap"]


@pytest.fixture
def server():
    with DemoImapServer(USER, PASSWORD, [make_message(n) for n in range(3)]) as srv:
        yield srv


@pytest.fixture
def client(server):
    client = connect(server)
    client.select_folder("INBOX")
    yield client
    client.logout()


def test_a_client_logs_in_and_selects_the_inbox_with_a_uidvalidity(server):
    assert server.host == "127.0.0.1" and server.port > 0
    client = connect(server)
    selected = client.select_folder("INBOX")
    assert selected[b"EXISTS"] == 3
    assert selected[b"UIDVALIDITY"] > 0
    assert selected[b"READ-WRITE"]
    assert {folder for _, _, folder in client.list_folders()} == {"INBOX", "Sent"}
    client.logout()


def test_capability_offers_idle_uidplus_and_move_after_login(client):
    capabilities = set(client.capabilities())
    assert {b"IMAP4REV1", b"IDLE", b"UIDPLUS", b"MOVE"} <= capabilities


def test_a_wrong_password_is_refused(server):
    client = IMAPClient(server.host, server.port, ssl=False, timeout=5)
    with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
        client.login(USER, "wrong")
    client.shutdown()


def test_uid_search_finds_the_seeded_messages_in_order(client):
    uids = client.search(["UID", "1:*"])
    assert len(uids) == 3 and uids == sorted(uids)
    assert client.search(["UID", f"{uids[1]}:*"]) == uids[1:]


def test_fetch_returns_sizes_and_the_exact_bytes_without_setting_seen(server, client):
    uids = client.search()
    sizes = client.fetch(uids, ["RFC822.SIZE"])
    bodies = client.fetch(uids, ["BODY.PEEK[]"])
    for n, uid in enumerate(uids):
        assert bodies[uid][b"BODY[]"] == make_message(n)
        assert sizes[uid][b"RFC822.SIZE"] == len(make_message(n))
    assert all(b"\\Seen" not in flags for flags in client.get_flags(uids).values())


def test_fetch_rfc822_does_set_seen_unlike_body_peek(client):
    uid = client.search()[0]
    client.fetch([uid], ["RFC822"])
    assert b"\\Seen" in client.get_flags([uid])[uid]


def test_fetch_header_fields_returns_only_the_named_headers(client):
    uid = client.search()[0]
    key = b"BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT)]"
    headers = client.fetch([uid], [b"BODY.PEEK" + key[4:]])[uid][key]
    assert headers.startswith(b"Subject: Question 0")
    assert b"Message-ID: <question-0@example.test>\r\n" in headers
    assert b"From:" not in headers


def test_stored_system_flags_and_keywords_persist_into_a_new_session(server, client):
    uid = client.search()[0]
    client.add_flags([uid], [b"\\Flagged", b"\\Answered", b"$Consulted"])
    other = connect(server)
    other.select_folder("INBOX", readonly=True)
    flags = set(other.get_flags([uid])[uid])
    assert {b"\\Flagged", b"\\Answered", b"$Consulted"} <= flags
    client.remove_flags([uid], [b"\\Flagged"])
    assert b"\\Flagged" not in other.get_flags([uid])[uid]
    other.logout()


def test_keywords_are_silently_dropped_when_keyword_support_is_off():
    with DemoImapServer(USER, PASSWORD, [make_message(0)], keywords=False) as srv:
        client = connect(srv)
        assert b"\\*" not in client.select_folder("INBOX")[b"PERMANENTFLAGS"]
        uid = client.search()[0]
        client.add_flags([uid], [b"$Consulted", b"\\Flagged"])
        flags = client.get_flags([uid])[uid]
        assert b"\\Flagged" in flags and b"$Consulted" not in flags
        client.logout()


def test_a_client_appends_a_reply_to_sent_and_gets_its_uid(client):
    result = client.append("Sent", make_message(99), flags=[b"\\Seen"])
    assert b"APPENDUID" in result
    sent = client.select_folder("Sent")
    assert sent[b"EXISTS"] == 1
    uid = client.search()[0]
    assert client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"] == make_message(99)
    assert b"\\Seen" in client.get_flags([uid])[uid]


def test_a_message_appended_by_the_server_is_seen_by_the_next_search(server, client):
    before = client.search()
    uid = server.append(make_message(7))
    assert uid > max(before)
    assert client.search() == before + [uid]
    body = client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
    assert body == make_message(7)


def test_append_can_set_flags_and_target_sent_but_not_an_unknown_mailbox(server, client):
    uid = server.append(make_message(8), flags=[r"\Seen"])
    assert b"\\Seen" in client.get_flags([uid])[uid]
    server.append(make_message(9), mailbox="Sent")
    assert client.folder_status("Sent", [b"MESSAGES"])[b"MESSAGES"] == 1
    with pytest.raises(DemoServerError, match="Archive"):
        server.append(make_message(10), mailbox="Archive")


def test_an_idle_client_is_told_about_a_message_appended_by_the_server(server, client):
    client.idle()
    server.append(make_message(11))
    responses = client.idle_check(timeout=5)
    client.idle_done()
    assert (4, b"EXISTS") in responses


def test_forty_seeded_messages_are_all_served_byte_for_byte():
    messages = [make_message(n) for n in range(40)]
    with DemoImapServer(USER, PASSWORD, messages) as srv:
        client = connect(srv)
        client.select_folder("INBOX")
        uids = client.search()
        sizes = client.fetch(uids, ["RFC822.SIZE"])
        bodies = client.fetch(uids, ["BODY.PEEK[]"])
        assert [bodies[u][b"BODY[]"] for u in sorted(uids)] == messages
        assert [sizes[u][b"RFC822.SIZE"] for u in sorted(uids)] == [len(m) for m in messages]
        client.logout()


def test_stop_disconnects_clients_and_leaves_no_thread_running():
    srv = DemoImapServer(USER, PASSWORD, [make_message(0)]).start()
    assert srv.running and len(demo_threads()) == 1
    idling = connect(srv)
    idling.select_folder("INBOX")
    idling.idle()
    srv.stop()
    assert not srv.running and demo_threads() == []
    responses = idling.idle_check(timeout=5)
    assert responses and responses[0][0] == b"BYE"
    idling.shutdown()
    srv.stop()  # a second stop is harmless


def test_start_raises_a_clear_error_when_the_port_is_taken(server):
    with pytest.raises(DemoServerError, match="could not start"):
        DemoImapServer(USER, PASSWORD, port=server.port).start()
    assert len(demo_threads()) == 1


def test_the_sink_writes_one_eml_per_message_that_parses_back_to_its_subject(tmp_path):
    threads_before = threading.active_count()
    with DemoSmtpSink(tmp_path / "outbox") as sink:
        assert sink.host == "127.0.0.1" and sink.port > 0
        messages = [email.message_from_bytes(make_message(n), policy=email.policy.default)
                    for n in range(3)]
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            for msg in messages:
                smtp.send_message(msg)
        assert sink.count == 3
    assert threading.active_count() == threads_before
    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.suffix for f in files] == [".eml"] * 3
    assert [f.stem.rsplit("-", 1)[1] for f in files] == ["0001", "0002", "0003"]
    for msg, path in zip(messages, files):
        raw = path.read_bytes()
        assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert parsed["Subject"] == msg["Subject"]
        assert parsed.get_content() == msg.get_content()


def test_the_sink_raises_a_clear_error_when_the_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(DemoServerError, match="could not start"):
            DemoSmtpSink(tmp_path, port=taken.getsockname()[1]).start()
