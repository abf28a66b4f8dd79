"""Screen rules: each a small named predicate that returns a reason to ignore a message, or None."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message

from .config import Screen, Service

_AUTOREPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Response",
                      "X-Auto-Response-Suppress")
_AUTOREPLY_SUBJECTS = ("automatic reply", "auto reply", "autoreply", "auto-reply", "out of office",
                       "out of the office", "auto:", "abwesenheitsnotiz", "réponse automatique")
_BOUNCE_SENDERS = ("mailer-daemon@", "postmaster@")


@dataclass
class Mail:
    """What the rules look at: the headers and the decoded sender, plus the settings they need."""

    headers: Message
    from_addr: str | None
    subject: str
    service: Service
    screen: Screen
    recent_from_sender: Callable[[str], int] = field(default=lambda addr: 0)

    def header(self, name: str) -> str:
        return str(self.headers.get(name, "") or "").strip()


def auto_submitted(mail: Mail) -> str | None:
    """RFC 3834: anything but Auto-Submitted: no was sent by a machine."""
    value = mail.header("Auto-Submitted").lower()
    if value and value.split(";")[0].strip() != "no":
        return f"auto-reply (Auto-Submitted: {value[:40]})"
    return None


def autoreply_headers(mail: Mail) -> str | None:
    for name in _AUTOREPLY_HEADERS:
        if name in mail.headers:
            return f"auto-reply ({name} header)"
    return None


def autoreply_subject(mail: Mail) -> str | None:
    subject = mail.subject.lower().lstrip()
    if subject.startswith(_AUTOREPLY_SUBJECTS):
        return "auto-reply (subject says it is automatic)"
    return None


def precedence(mail: Mail) -> str | None:
    value = mail.header("Precedence").lower()
    if value in ("bulk", "list", "junk", "auto_reply"):
        return f"bulk mail (Precedence: {value})"
    return None


def mailing_list(mail: Mail) -> str | None:
    for name in ("List-Id", "List-Unsubscribe", "List-Post"):
        if name in mail.headers:
            return f"mailing list ({name} header)"
    return None


def bounce(mail: Mail) -> str | None:
    """Delivery reports: multipart/report, a null Return-Path, or the mailer daemon as sender."""
    content_type = mail.header("Content-Type").lower()
    if content_type.startswith("multipart/report"):
        return "bounce (delivery status report)"
    if mail.header("Return-Path").replace(" ", "") == "<>":
        return "bounce (null Return-Path)"
    if "X-Failed-Recipients" in mail.headers:
        return "bounce (X-Failed-Recipients header)"
    if mail.from_addr and mail.from_addr.lower().startswith(_BOUNCE_SENDERS):
        return "bounce (sent by the mailer daemon)"
    return None


def own_address(mail: Mail) -> str | None:
    ours = {mail.service.address, *mail.service.own_addresses}
    if mail.from_addr and mail.from_addr.lower() in ours:
        return "our own mail (sent from our own address)"
    return None


def loop_header(mail: Mail) -> str | None:
    if mail.service.loop_header in mail.headers:
        return f"mail loop (carries our {mail.service.loop_header} loop header)"
    return None


def allow_list(mail: Mail) -> str | None:
    allowed = [a.lower() for a in mail.screen.allow_senders]
    if not allowed or not mail.from_addr:
        return None
    sender = mail.from_addr.lower()
    domain = "@" + sender.rsplit("@", 1)[-1]
    if sender in allowed or domain in allowed or domain[1:] in allowed:
        return None
    return "sender not on the allow-list (screen.allow_senders)"


def rate_limit(mail: Mail) -> str | None:
    limit = mail.screen.max_per_sender_per_hour
    if limit <= 0 or not mail.from_addr:
        return None
    count = mail.recent_from_sender(mail.from_addr)
    if count >= limit:
        return f"rate limit ({count} questions from this sender in the last hour; limit {limit})"
    return None


# The order in which they are tried, read top to bottom.
RULES: tuple[Callable[[Mail], str | None], ...] = (
    auto_submitted,
    autoreply_headers,
    autoreply_subject,
    precedence,
    mailing_list,
    bounce,
    own_address,
    loop_header,
    allow_list,
    rate_limit,
)
