"""The real test servers work with real clients: Dovecot with imapclient, PostgreSQL with
SQLAlchemy, aiosmtpd with smtplib."""
from __future__ import annotations

import email.policy
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
import sqlalchemy as sa
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from servers import MissingServer, find_program
from servers.dovecot import Dovecot, ImapUser
from servers.fixtures import _session_server
from servers.smtp import SmtpServer


def make_message(subject: str = "Is 99213 right here?", body: str = "Question body.\n",
                 sender: str = "alice@example.test",
                 to: str = "consultant@example.test") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Message-ID"] = make_msgid(domain="example.test")
    message.set_content(body)
    return message


def raw(message: EmailMessage) -> bytes:
    # IMAP and SMTP both want CRLF line ends; the SMTP policy gives them.
    return message.as_bytes(policy=email.policy.SMTP)


def connect(user: ImapUser, how: str = "plain") -> IMAPClient:
    """A logged-in client; `how` is plain, starttls or tls (implicit), verifying with cafile."""
    context = ssl.create_default_context(cafile=user.cafile)
    if how == "tls":
        client = IMAPClient(user.host, user.tls_port, ssl=True, ssl_context=context, timeout=10)
    else:
        client = IMAPClient(user.host, user.port, ssl=False, timeout=10)
        if how == "starttls":
            client.starttls(context)
    client.login(user.username, user.password)
    return client


def refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


# -- Dovecot ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["plain", "starttls", "tls"])
def test_imap_user_logs_in_over_plain_starttls_and_implicit_tls(imap_user, how):
    with connect(imap_user, how) as client:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0


def test_certificate_verifies_for_localhost_as_well_as_127_0_0_1(imap_user):
    context = ssl.create_default_context(cafile=imap_user.cafile)
    with IMAPClient("localhost", imap_user.tls_port, ssl_context=context, timeout=10) as client:
        client.login(imap_user.username, imap_user.password)


def test_certificate_is_refused_without_the_test_ca(imap_user):
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(imap_user.host, imap_user.tls_port, ssl_context=ssl.create_default_context())


def test_wrong_password_is_refused(imap_user):
    client = IMAPClient(imap_user.host, imap_user.port, ssl=False, timeout=10)
    try:
        with pytest.raises(LoginError):
            client.login(imap_user.username, "not-the-password")
    finally:
        client.shutdown()


def test_users_added_back_to_back_can_log_in_at_once(dovecot):
    users = [dovecot.add_user() for _ in range(3)]
    for user in users:
        with connect(user):
            pass
    assert len({user.username for user in users}) == 3


def test_server_offers_idle_move_uidplus_and_a_sent_folder(imap_user):
    with connect(imap_user) as client:
        for capability in (b"IDLE", b"MOVE", b"UIDPLUS", b"SPECIAL-USE"):
            assert client.has_capability(capability.decode()), capability
        assert client.find_special_folder(b"\\Sent") == "Sent"


def test_custom_keywords_can_be_set_and_read_back(imap_user):
    with connect(imap_user) as client:
        client.append("INBOX", raw(make_message()))
        client.select_folder("INBOX")
        [uid] = client.search("ALL")
        client.add_flags([uid], [b"$Consultant-Fetched"])
        assert b"$Consultant-Fetched" in client.get_flags([uid])[uid]


def test_append_then_fetch_body_peek_returns_the_same_bytes_and_keeps_it_unseen(imap_user):
    data = raw(make_message())
    with connect(imap_user, "starttls") as client:
        appended = client.append("INBOX", data)
        assert b"APPENDUID" in appended
        client.select_folder("INBOX")
        [uid] = client.search("ALL")
        fetched = client.fetch([uid], ["BODY.PEEK[]", "FLAGS"])[uid]
        assert fetched[b"BODY[]"] == data
        assert b"\\Seen" not in fetched[b"FLAGS"]


def test_deliver_puts_a_message_where_search_finds_it(dovecot, imap_user):
    dovecot.deliver(imap_user, raw(make_message(subject="Modifier 25 with 99214")))
    dovecot.deliver(imap_user, raw(make_message(subject="A copy")), mailbox="Sent")
    with connect(imap_user) as client:
        client.select_folder("INBOX", readonly=True)
        assert len(client.search(["SUBJECT", "Modifier 25"])) == 1
        assert client.folder_status("Sent", [b"MESSAGES"])[b"MESSAGES"] == 1


def test_set_uidvalidity_changes_what_select_reports(dovecot, imap_user):
    with connect(imap_user) as client:
        before = client.select_folder("INBOX")[b"UIDVALIDITY"]
    dovecot.set_uidvalidity(imap_user, 12345)
    with connect(imap_user) as client:
        after = client.select_folder("INBOX")[b"UIDVALIDITY"]
    assert before != 12345
    assert after == 12345


def test_idle_reports_exists_after_a_delivery(dovecot, imap_user):
    with connect(imap_user) as client:
        client.select_folder("INBOX")
        client.idle()
        dovecot.deliver(imap_user, raw(make_message()))
        responses = client.idle_check(timeout=10)
        client.idle_done()
    assert (1, b"EXISTS") in responses


def test_stop_refuses_connections_and_start_brings_back_the_same_ports_and_mail(
        dovecot, imap_user):
    dovecot.deliver(imap_user, raw(make_message()))
    dovecot.stop()
    try:
        assert refused(imap_user.host, imap_user.port)
        assert refused(imap_user.host, imap_user.tls_port)
    finally:
        dovecot.start()
    with connect(imap_user, "tls") as client:
        assert client.select_folder("INBOX")[b"EXISTS"] == 1
    assert "Login: user=<" + imap_user.username in dovecot.log_text()


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.mark.postgres
def test_create_database_returns_a_url_sqlalchemy_can_query(pg_cluster):
    url = pg_cluster.create_database()
    assert url.startswith(f"postgresql+psycopg://postgres@127.0.0.1:{pg_cluster.port}/")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT 40 + 2")).scalar() == 42
            assert connection.execute(sa.text("SHOW fsync")).scalar() == "off"
            assert connection.execute(sa.text("SHOW listen_addresses")).scalar() == "127.0.0.1"
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_create_database_from_a_template_copies_its_tables_and_rows(pg_cluster):
    template_url = pg_cluster.create_database()
    engine = sa.create_engine(template_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE code (code text PRIMARY KEY)"))
        connection.execute(sa.text("INSERT INTO code VALUES ('99213')"))
    engine.dispose()  # PostgreSQL copies a template only when nobody is connected to it

    copy = sa.create_engine(pg_cluster.create_database(template=template_url.rsplit("/")[-1]))
    try:
        with copy.connect() as connection:
            assert connection.execute(sa.text("SELECT code FROM code")).scalar() == "99213"
    finally:
        copy.dispose()


@pytest.mark.postgres
def test_drop_database_works_even_while_someone_is_connected(pg_cluster):
    name = "dropped_while_connected"
    engine = sa.create_engine(pg_cluster.create_database(name))
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
            pg_cluster.drop_database(name)
    except sa.exc.OperationalError:
        pass  # our session was terminated by the drop, as intended
    finally:
        engine.dispose()
    with pytest.raises(sa.exc.OperationalError):
        sa.create_engine(pg_cluster.url(name)).connect().close()


@pytest.mark.postgres
def test_restart_keeps_the_data_and_the_port(pg_cluster):
    url = pg_cluster.create_database()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE kept (x int)"))
            connection.execute(sa.text("INSERT INTO kept VALUES (7)"))
        pg_cluster.restart()
        engine.dispose()  # pooled connections died with the old server
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT x FROM kept")).scalar() == 7
    finally:
        engine.dispose()


# -- SMTP ---------------------------------------------------------------------------------


def test_send_message_is_recorded_with_envelope_raw_bytes_and_parsed_message(smtp):
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        client.send_message(make_message(subject="Reply: 99213"),
                            to_addrs=["alice@example.test", "bob@example.test"])
    [received] = smtp.wait_for(1)
    assert received.mail_from == "alice@example.test"
    assert received.rcpt_tos == ("alice@example.test", "bob@example.test")
    assert received.message["Subject"] == "Reply: 99213"
    assert b"\r\nSubject: Reply: 99213\r\n" in received.raw
    assert (received.tls, received.login) == (False, None)


def test_fail_next_rcpt_550_makes_smtplib_refuse_the_recipient(smtp):
    smtp.fail_next("RCPT", 550, "5.1.1 No such user")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refusal:
            client.send_message(make_message())
    assert refusal.value.recipients["consultant@example.test"] == (550, b"5.1.1 No such user")
    assert smtp.messages == []


def test_fail_next_mail_451_fails_once_and_the_retry_succeeds(smtp):
    smtp.fail_next("MAIL", 451, "4.3.0 Try again later")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as refusal:
            client.send_message(make_message())
        assert refusal.value.smtp_code == 451
        client.send_message(make_message())
    assert len(smtp.wait_for(1)) == 1


def test_fail_next_data_with_times_fails_that_many_transactions(smtp):
    smtp.fail_next("DATA", 452, "4.3.1 Insufficient storage", times=2)
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPDataError) as failure:
                client.send_message(make_message())
            assert failure.value.smtp_code == 452
        client.send_message(make_message())
    assert len(smtp.wait_for(1)) == 1


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_then_auth_sends_and_records_the_login(smtp, mechanism):
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        client.starttls(context=ssl.create_default_context(cafile=smtp.cafile))
        # smtplib.auth() takes 503 ("no EHLO yet") for success, so EHLO again after STARTTLS.
        client.ehlo()
        client.user, client.password = smtp.username, smtp.password
        client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))
        client.send_message(make_message())
    [received] = smtp.wait_for(1)
    assert (received.tls, received.login) == (True, smtp.username)


def test_auth_is_offered_only_after_starttls_and_a_wrong_password_gets_535(smtp):
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        client.starttls(context=ssl.create_default_context(cafile=smtp.cafile))
        with pytest.raises(smtplib.SMTPAuthenticationError) as failure:
            client.login(smtp.username, "not-the-password")
    assert failure.value.smtp_code == 535


def test_stopped_server_refuses_connections_and_works_after_start(smtp):
    smtp.stop()
    try:
        with pytest.raises(ConnectionRefusedError):
            smtplib.SMTP(smtp.host, smtp.port, timeout=5)
    finally:
        smtp.start()
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
        client.send_message(make_message())
    assert len(smtp.wait_for(1)) == 1


def test_wait_for_names_how_many_arrived_when_it_times_out(smtp):
    with pytest.raises(TimeoutError, match="expected 1 messages within 0.1 s, got 0"):
        smtp.wait_for(1, timeout=0.1)


def test_server_that_requires_tls_and_auth_refuses_mail_without_them():
    with SmtpServer(tls=True, username="u", password="p", require_tls=True,
                    require_auth=True) as server:
        with smtplib.SMTP(server.host, server.port, timeout=10) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as refusal:
                client.send_message(make_message())
            assert refusal.value.smtp_code == 530
            client.starttls(context=ssl.create_default_context(cafile=server.cafile))
            client.login("u", "p")
            client.send_message(make_message())
        assert server.wait_for(1)[0].login == "u"


# -- Fixtures -----------------------------------------------------------------------------


def test_a_missing_server_binary_fails_naming_the_debian_package_and_never_skips():
    def build():
        raise MissingServer("dovecot", "dovecot-imapd")

    with pytest.raises(pytest.fail.Exception, match="apt-get install -y dovecot-imapd"):
        next(_session_server(build))


def test_a_dovecot_that_cannot_start_raises_with_the_reason_from_its_output():
    server = Dovecot()
    try:
        server.config_path.write_text("no_such_setting = 1\n")
        with pytest.raises(RuntimeError, match="no_such_setting"):
            server.start()
        assert not server.running
    finally:
        server.close()


@pytest.mark.postgres
def test_a_cluster_that_cannot_start_raises_with_its_log_tail(pg_cluster):
    # The session's cluster, stopped, so the test costs no initdb; started again at the end.
    pg_cluster.stop()
    try:
        with socket.socket() as squatter:  # someone else holds the cluster's port
            # SO_REUSEADDR: the cluster's old connections may still be in TIME_WAIT.
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", pg_cluster.port))
            squatter.listen()
            with pytest.raises(RuntimeError, match="Address already in use"):
                pg_cluster.start()
    finally:
        pg_cluster.start()


def test_find_program_raises_missing_server_with_the_package_name():
    with pytest.raises(MissingServer, match="apt-get install -y no-such-package"):
        find_program("no-such-program-here", "no-such-package")

