"""Outgoing mail: build a reply from our own values only, connect to SMTP, keep a copy in Sent."""
from __future__ import annotations

import io
import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import formataddr, formatdate

from imapclient import IMAPClient

from .config import Settings, Smtp
from .draft import environment, one_line, safe_address, safe_msg_ids
from .errors import ConfigError
from .fetch import tls_context
from .models import Reply

# A copy is put in the Sent folder as PENDING, gets HANDED just before the message data goes out,
# and DELIVERED once the server accepted it: after a crash, PENDING alone means "certainly not sent".
PENDING, HANDED, DELIVERED = b"$CCPending", b"$CCSending", b"$CCSent"
SMTP_OUTAGES = (OSError, socket.timeout, ssl.SSLError, smtplib.SMTPServerDisconnected,
                smtplib.SMTPConnectError, smtplib.SMTPHeloError)
_APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")


def connect_smtp(smtp: Smtp) -> smtplib.SMTP:
    """Open a session over implicit TLS, STARTTLS or (loopback only) plain, and log in if asked."""
    if smtp.security == "tls":
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=tls_context(smtp.cafile))
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        if smtp.security == "starttls":
            client.starttls(context=tls_context(smtp.cafile))
            client.ehlo()
    if smtp.username:
        password = smtp.secret()
        if not password:
            raise ConfigError("smtp.username is set but there is no SMTP password "
                              "(CONSULTANT_SMTP__PASSWORD or smtp.password_file)")
        client.login(smtp.username, password)
    return client


def transmit(client: smtplib.SMTP, msg: EmailMessage, from_addr: str, to_addr: str,
             before_data: Callable[[], None]) -> None:
    """What smtplib's send_message does for one ASCII recipient, in steps: MAIL and RCPT, then
    `before_data()`, then DATA. Nothing can be delivered before the server has the message data, so
    until before_data() returns, a crash leaves the reply certainly unsent. Refusals raise the
    exceptions sendmail raises; if before_data() raises, the envelope is reset and it propagates."""
    with io.BytesIO() as flat:
        BytesGenerator(flat, policy=msg.policy).flatten(msg, linesep="\r\n")
        data = flat.getvalue()
    client.ehlo_or_helo_if_needed()
    code, words = client.mail(from_addr)
    if code != 250:
        _reset(client, code)
        raise smtplib.SMTPSenderRefused(code, words, from_addr)
    code, words = client.rcpt(to_addr)
    if code not in (250, 251):
        _reset(client, code)
        raise smtplib.SMTPRecipientsRefused({to_addr: (code, words)})
    try:
        before_data()
    except Exception:
        _reset(client, None)
        raise
    code, words = client.data(data)
    if code != 250:
        _reset(client, code)
        raise smtplib.SMTPDataError(code, words)


def _reset(client: smtplib.SMTP, code: int | None) -> None:
    """Abandon the transaction: RSET, or close after a 421 (the server is closing anyway)."""
    if code == 421:
        client.close()
        return
    try:
        client.rset()
    except (smtplib.SMTPException, OSError):
        pass


def paragraphs(text: str) -> list[str]:
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def build(reply: Reply, settings: Settings) -> EmailMessage:
    """The message as it will be sent. Every header comes from our settings or from values that were
    checked when the draft was made, and is checked again here: nothing hostile reaches a header."""
    to_addr = safe_address(reply.to_addr)
    if not to_addr:
        raise ValueError(f"reply {reply.id}: the recipient address is not usable")
    service = settings.service
    msg = EmailMessage()
    msg["From"] = formataddr((one_line(service.name, 80), service.address))
    msg["To"] = to_addr
    msg["Subject"] = one_line(reply.subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = safe_msg_ids([reply.message_id])[0]
    parent = safe_msg_ids([reply.in_reply_to or ""])
    if parent:
        msg["In-Reply-To"] = parent[0]
    references = safe_msg_ids((reply.references or "").split())
    if references:
        msg["References"] = " ".join(references)
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg[service.loop_header] = service.address
    if reply.edited_text:
        html = environment(settings.templates_dir()).get_template("reply/edited.html.j2").render(
            re_subject=one_line(reply.subject), paragraphs=paragraphs(reply.edited_text))
        text = reply.edited_text
    else:
        text, html = reply.text, reply.html
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


class SentFolder:
    """The copy of every reply in an IMAP folder: put there before sending, marked once delivered,
    so that after a crash the folder tells whether the server accepted the reply."""

    def __init__(self, client: IMAPClient, folder: str):
        self.client, self.folder = client, folder
        self._current = False  # selected, and nothing appended since

    def _select(self) -> None:
        """Select the folder unless the view already holds every copy we put there: a SELECT costs a
        round trip, and the one between the SMTP transaction and DELIVERED widens the window in
        which a crash leaves a reply in doubt."""
        if not self._current:
            self.client.select_folder(self.folder)
            self._current = True

    def put_pending(self, msg: EmailMessage) -> int | None:
        self._current = False
        response = self.client.append(self.folder, msg.as_bytes(), flags=[b"\\Seen", PENDING])
        match = _APPENDUID.search(response if isinstance(response, bytes) else str(response).encode())
        if match:
            return int(match[1])
        return self.find(msg["Message-ID"])[0]

    def find(self, message_id: str) -> tuple[int | None, str]:
        """The live copy with this Message-ID and how far it got: (uid, "delivered"), (uid, "handed")
        (it went to the SMTP server, which may or may not have taken it), (uid, "pending") (it never
        reached the server), or (None, "none")."""
        self.client.select_folder(self.folder)
        self._current = True
        uids = self.client.search(["NOT", "DELETED", "HEADER", "Message-ID", message_id])
        if not uids:
            return None, "none"
        flags = self.client.get_flags(uids)
        for flag, state in ((DELIVERED, "delivered"), (HANDED, "handed")):
            marked = [u for u in uids if flag in flags.get(u, ())]
            if marked:
                return marked[0], state
        return uids[0], "pending"

    def mark_handed(self, uid: int) -> None:
        """Just before the SMTP transaction: from now on the server may have the reply."""
        self._select()
        self.client.add_flags([uid], [HANDED], silent=True)

    def mark_delivered(self, uid: int) -> None:
        self._select()
        self.client.add_flags([uid], [DELIVERED], silent=True)
        self.client.remove_flags([uid], [PENDING], silent=True)

    def discard(self, uid: int) -> None:
        """The server refused the reply (or never got it): the copy must not claim it was sent."""
        self._select()
        self.client.add_flags([uid], [b"\\Deleted"], silent=True)
        if self.client.has_capability("UIDPLUS"):
            self.client.expunge([uid])
