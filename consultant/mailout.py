"""Outgoing mail: build a reply from our own values only, connect to SMTP, keep a copy in Sent."""
from __future__ import annotations

import io
import re
import secrets
import smtplib
import socket
import ssl
from collections.abc import Callable
from email.contentmanager import _encode_text  # the stdlib's choice of transfer encoding
from email.generator import BytesGenerator
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import formataddr, formatdate
from functools import lru_cache
from pathlib import Path

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

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
_LEADING_DOT = re.compile(rb"(?m)^\.")  # dot-stuffing (RFC 5321 4.5.2)
_NEWLINE = re.compile(r"\r\n|\r|\n")
# Header values the stdlib would write back exactly as they are (see _Plain): printable ASCII words
# with single spaces; an address or message-ids of dot-atoms only.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_PLAIN_TEXT = re.compile(r"[!-~]+(?: [!-~]+)*")
_PLAIN_ADDRESS = re.compile(rf"{_DOT_ATOM}@{_DOT_ATOM}")
_PLAIN_IDS = re.compile(rf"<{_DOT_ATOM}@{_DOT_ATOM}>(?: <{_DOT_ATOM}@{_DOT_ATOM}>)*")


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


class _Generator(BytesGenerator):
    def _write_lines(self, lines: str) -> None:
        """As the stdlib's (each line ended with our line end, the last one only if it was), in one
        write instead of two per line."""
        if lines:
            *ended, last = _NEWLINE.split(lines)
            self.write("".join(line + self._NL for line in ended) + last)


def flatten(msg: EmailMessage) -> bytes:
    """The message as it goes over the wire (CRLF line ends), also what the Sent folder keeps."""
    with io.BytesIO() as flat:
        _Generator(flat, policy=msg.policy).flatten(msg, linesep="\r\n")
        return flat.getvalue()


def transmit(client: smtplib.SMTP, data: bytes, from_addr: str, to_addr: str,
             before_data: Callable[[], None], while_waiting: Callable[[], None] | None = None,
             while_mail: Callable[[], None] | None = None) -> None:
    """What smtplib's send_message does for one ASCII recipient (`data` as flatten() makes it), in
    steps: MAIL and RCPT, then `before_data()`, then DATA. Nothing can be delivered before the
    server has the message data, so until before_data() returns, a crash leaves the reply certainly
    unsent. Refusals raise the exceptions sendmail raises; if before_data() raises, the envelope is
    reset and it propagates. Work done while the server answers costs no time of its own:
    `while_mail()` runs once MAIL is on its way (if it raises, so does transmit, with the MAIL reply
    unread: close the connection), `while_waiting()` (it must not raise) once the data is."""
    client.ehlo_or_helo_if_needed()
    client.putcmd("mail", f"FROM:{smtplib.quoteaddr(from_addr)}")  # smtplib's mail(), in two halves
    if while_mail is not None:
        while_mail()
    code, words = client.getreply()
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
    # smtplib's data(), in two halves so that while_waiting() runs between them.
    code, words = client.docmd("data")
    if code == 354:
        stuffed = _LEADING_DOT.sub(b"..", data)
        client.send(stuffed + (b".\r\n" if stuffed.endswith(b"\r\n") else b"\r\n.\r\n"))
        if while_waiting is not None:
            while_waiting()
        code, words = client.getreply()
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


class _HeaderClasses(HeaderRegistry):
    """The standard registry, except that each header's class is made once: HeaderRegistry makes a
    new class every time it parses a header, which was a third of the cost of building a reply."""

    def __init__(self):
        super().__init__()
        self._made: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        made = self._made.get(name.lower())
        if made is None:
            made = self._made[name.lower()] = super().__getitem__(name)
        return made


_SHARED: dict[int, object] = {}  # id -> header, for the headers _fixed() made (kept, so ids stay theirs)
_FOLDED: dict[tuple, bytes] = {}


class _Policy(EmailPolicy):
    """email.policy.default, except that a header messages share (see _fixed) is folded once per
    way of folding: the generator folds every header of every message it writes."""

    def fold_binary(self, name, value):
        if id(value) not in _SHARED:
            return super().fold_binary(name, value)
        key = (id(value), name, self.linesep, self.max_line_length, self.utf8, self.cte_type)
        folded = _FOLDED.get(key)
        if folded is None:
            folded = _FOLDED[key] = super().fold_binary(name, value)
        return folded


# email.policy.default with the registry above and shared folds: the same headers, the same bytes.
POLICY = _Policy(header_factory=_HeaderClasses())


@lru_cache(maxsize=None)  # a handful: ours and the MIME structure's
def _fixed(name: str, value: str):
    """A header that many messages carry (ours, the MIME structure's), parsed once: a parsed header
    is immutable, so messages can share it."""
    header = POLICY.header_factory(name, value)
    _SHARED[id(header)] = header
    return header


def _text_part(text: str, subtype: str) -> EmailMessage:
    """What set_content(text, subtype) makes of a part, without parsing its fixed headers again for
    every message: the same transfer encoding (the stdlib's own choice), headers and payload.
    tests/test_send_build.py holds it to the stdlib's bytes."""
    part = EmailMessage(policy=POLICY)
    cte, payload = _encode_text(text, "utf-8", None, POLICY)
    part["Content-Type"] = _fixed("Content-Type", f'text/{subtype}; charset="utf-8"')
    part.set_payload(payload)
    part["Content-Transfer-Encoding"] = _fixed("Content-Transfer-Encoding", cte)
    return part


class _Plain(str):
    """A header value the stdlib would write exactly as it is, on one line (see _plain): it is not
    parsed only to be written back."""

    def __new__(cls, name: str, value: str):
        header = super().__new__(cls, value)
        header.name = name
        return header

    def fold(self, *, policy) -> str:
        return f"{self.name}: {self}{policy.linesep}"


def _plain(name: str, value: str, shape: re.Pattern):
    """`value` as a _Plain header when it has this shape, holds nothing the parser would decode
    (an encoded word) and fits on one line; else as it is, for the stdlib to parse and fold."""
    if len(name) + 2 + len(value) <= POLICY.max_line_length and "=?" not in value and shape.fullmatch(value):
        return _Plain(name, value)
    return value


class _Multipart(_Plain):
    """The message's own Content-Type, multipart/alternative with a boundary of _boundary()'s
    shape, written as the stdlib writes it without parsing it first (a quarter of build()): on one
    line when it fits, else broken after the ";"; a width where even that does not fit is left to
    the stdlib (tests/test_send_build.py holds all widths to the stdlib's fold)."""

    def fold(self, *, policy) -> str:
        width = policy.max_line_length
        if not width or len(self.name) + 2 + len(self) <= width:
            return super().fold(policy=policy)
        kind, _, boundary = self.partition("; ")
        if len(boundary) + 2 <= width:  # the stdlib breaks there from this width on
            return f"{self.name}: {kind};{policy.linesep} {boundary}{policy.linesep}"
        return policy.header_factory(self.name, str(self)).fold(policy=policy)


@lru_cache(maxsize=4)
def _templates(folder: Path):
    return environment(folder)


def build(reply: Reply, settings: Settings) -> EmailMessage:
    """The message as it will be sent. Every header comes from our settings or from values that were
    checked when the draft was made, and is checked again here: nothing hostile reaches a header."""
    to_addr = safe_address(reply.to_addr)
    if not to_addr:
        raise ValueError(f"reply {reply.id}: the recipient address is not usable")
    service = settings.service
    msg = EmailMessage(policy=POLICY)
    msg["From"] = _fixed("From", formataddr((one_line(service.name, 80), service.address)))
    msg["To"] = _plain("To", to_addr, _PLAIN_ADDRESS)
    msg["Subject"] = _plain("Subject", one_line(reply.subject), _PLAIN_TEXT)
    msg["Date"] = _plain("Date", formatdate(localtime=False), _PLAIN_TEXT)
    msg["Message-ID"] = _plain("Message-ID", safe_msg_ids([reply.message_id])[0], _PLAIN_IDS)
    parent = safe_msg_ids([reply.in_reply_to or ""])
    if parent:
        msg["In-Reply-To"] = _plain("In-Reply-To", parent[0], _PLAIN_IDS)
    references = safe_msg_ids((reply.references or "").split())
    if references:
        msg["References"] = _plain("References", " ".join(references), _PLAIN_IDS)
    msg["Auto-Submitted"] = _fixed("Auto-Submitted", "auto-replied")
    msg["X-Auto-Response-Suppress"] = _fixed("X-Auto-Response-Suppress", "All")
    msg[service.loop_header] = _fixed(service.loop_header, service.address)
    if reply.edited_text:
        html = _templates(settings.templates_dir()).get_template("reply/edited.html.j2").render(
            re_subject=one_line(reply.subject), paragraphs=paragraphs(reply.edited_text))
        text = reply.edited_text
    else:
        text, html = reply.text, reply.html
    # As set_content(text) then add_alternative(html, subtype="html") arrange it, MIME-Version and
    # all (the stdlib gives the second part a MIME-Version of its own).
    parts = _text_part(text, "plain"), _text_part(html, "html")
    parts[1]["MIME-Version"] = _fixed("MIME-Version", "1.0")
    msg["MIME-Version"] = _fixed("MIME-Version", "1.0")
    msg["Content-Type"] = _Multipart("Content-Type", f'multipart/alternative; boundary="{_boundary(parts)}"')
    for part in parts:
        msg.attach(part)
    return msg


def _boundary(parts) -> str:
    """A boundary of the generator's shape, unguessable, and (as the generator makes sure of its
    own) found in no part: then the generator takes it instead of searching the text for one."""
    while True:
        boundary = f"==============={secrets.randbits(63):019d}=="
        if not any(f"--{boundary}" in part.get_payload() for part in parts):
            return boundary


class SentFolder:
    """The copy of every reply in an IMAP folder: put there before sending, marked once delivered,
    so that after a crash the folder tells whether the server accepted the reply."""

    def __init__(self, client: IMAPClient, folder: str):
        self.client, self.folder = client, folder
        self._selected = False
        self._flags: dict[int, tuple] = {}  # what mark_handed() found on each copy

    def _select(self) -> None:
        """Select the folder once: a copy we APPEND to the selected folder joins the view at once
        (the server announces it), so no SELECT is needed between sending and DELIVERED, where a
        round trip would widen the window in which a crash leaves a reply in doubt."""
        if not self._selected:
            self.client.select_folder(self.folder)
            self._selected = True

    def put_pending(self, data: bytes, message_id: str) -> int | None:
        response = self.client.append(self.folder, data, flags=[b"\\Seen", PENDING])
        match = _APPENDUID.search(response if isinstance(response, bytes) else str(response).encode())
        if match:
            return int(match[1])
        return self.find(message_id)[0]

    def find(self, message_id: str) -> tuple[int | None, str]:
        """The live copy with this Message-ID and how far it got: (uid, "delivered"), (uid, "handed")
        (it went to the SMTP server, which may or may not have taken it), (uid, "pending") (it never
        reached the server), or (None, "none")."""
        self.client.select_folder(self.folder)
        self._selected = True
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
        """Just before the message data goes out: from now on the server may have the reply. The
        flag is checked in the server's answer (a SELECT and a second try if the view does not
        hold the copy yet): a reply must never leave with its copy still saying PENDING."""
        self._select()
        for attempt in range(2):
            flags = self.client.add_flags([uid], [HANDED]).get(uid, ())
            if HANDED in flags:
                self._flags[uid] = flags
                return
            self.client.select_folder(self.folder)
        raise IMAPClientError(f"the copy {uid} in the Sent folder could not be marked as handed over")

    def mark_delivered(self, uid: int) -> None:
        """DELIVERED in, PENDING out, in one STORE (the other flags as mark_handed found them)."""
        self._select()
        kept = [f for f in self._flags.pop(uid, (b"\\Seen", HANDED)) if f not in (PENDING, b"\\Recent")]
        self.client.set_flags([uid], [*kept, DELIVERED], silent=True)

    def discard(self, uid: int) -> None:
        """The server refused the reply (or never got it): the copy must not claim it was sent."""
        self._flags.pop(uid, None)
        self._select()
        self.client.add_flags([uid], [b"\\Deleted"], silent=True)
        if self.client.has_capability("UIDPLUS"):
            self.client.expunge([uid])
