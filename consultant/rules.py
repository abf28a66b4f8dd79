"""Screen rules: each a small named predicate that returns a reason to ignore a message (or, for the
rules marked @quarantines, to hold it for an operator), or None."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message

from . import authres
from .config import Screen, Service

_AUTOREPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Response",
                      "X-Auto-Response-Suppress")
_AUTOREPLY_SUBJECTS = ("automatic reply", "auto reply", "autoreply", "auto-reply", "out of office",
                       "out of the office", "auto:", "abwesenheitsnotiz", "réponse automatique")
_BOUNCE_SENDERS = ("mailer-daemon@", "postmaster@")
# How the reasons of the limits and of sender authentication begin: the operator page counts
# the events whose reason starts so (consultant.stats.held_back).
PER_SENDER_LIMIT = "rate limit ("
GLOBAL_LIMIT = "global rate limit"
SENDER_AUTH = "sender authentication"


@dataclass
class Mail:
    """What the rules look at: the headers and the decoded sender, plus the settings they need."""

    headers: Message
    from_addr: str | None
    subject: str
    service: Service
    screen: Screen
    recent_from_sender: Callable[[str], int] = field(default=lambda addr: 0)
    # Questions from all senders in the last hour that got past the screen (this one not counted).
    recent_overall: Callable[[], int] = field(default=lambda: 0)
    # True when an operator requeued this message: they looked at it and let it through.
    released: Callable[[], bool] = field(default=lambda: False)

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
    ours = {a.lower() for a in (mail.service.address, *mail.service.own_addresses)}
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


def quarantines(rule: Callable[[Mail], str | None]) -> Callable[[Mail], str | None]:
    """Marks a rule whose objection holds the message for an operator (quarantine, replayable with
    requeue) instead of ignoring it: what it stops may be a person's question."""
    rule.quarantines = True  # type: ignore[attr-defined]
    return rule


def _from_our_server(mail: Mail) -> authres.AuthResults | None:
    """The topmost Authentication-Results field that names our server (screen.authserv_id).

    Our server prepends its field when the message arrives, so the topmost field with its name is
    what it found. Fields further down came with the message: a sender can write our server's name
    into them (RFC 8601 asks a border server to remove such fields, not every server does), so they
    are never read. Fields naming any other server are ignored, whatever they say.
    """
    wanted = mail.screen.authserv_id.strip().lower()
    for value in mail.headers.get_all("Authentication-Results") or ():
        found = authres.parse(str(value))
        if found.authserv_id.lower() == wanted:
            return found
    return None


_POLICY = re.compile(r"\bp=([a-z]{1,12})\b", re.IGNORECASE)


def _dmarc(results: authres.AuthResults, domain: str, server: str) -> str | None:
    found = results.of("dmarc")
    if not found:
        return f"{SENDER_AUTH} missing: our server {server} gave no dmarc result"
    for r in found:
        if r.result == "fail":
            policy = next((m[1].lower() for c in r.comments for m in [_POLICY.search(c)] if m), "")
            policy = policy or r.prop("policy.dmarc")[:12]
            said = f"dmarc=fail (p={policy})" if policy else "dmarc=fail"
            return f"{SENDER_AUTH} failed: {said} from our server {server}"
    if all(r.prop("header.from") and not authres.aligned(r.prop("header.from"), domain) for r in found):
        other = authres.domain_of(found[0].prop("header.from")) or "another domain"
        return (f"{SENDER_AUTH} failed: our server {server} reported dmarc for {other}, "
                f"not for the From domain {domain}")
    return None


def _dkim_spf(results: authres.AuthResults, domain: str, server: str) -> str | None:
    said = []
    for method, prop in (("dkim", ("header.d", "header.i")), ("spf", ("smtp.mailfrom",))):
        found = results.of(method)
        for r in found:
            signer = next((r.prop(p) for p in prop if r.prop(p)), "")
            if r.result == "pass" and authres.aligned(signer, domain):
                return None
            about = authres.domain_of(signer)
            said.append(f"{method}={r.result[:20]}" + (f" for {about}" if about and r.result == "pass" else ""))
        if not found:
            said.append(f"no {method} result")
    return (f"{SENDER_AUTH} failed: neither dkim nor spf passed for {domain} "
            f"({', '.join(said[:6])}) from our server {server}")


@quarantines
def sender_auth(mail: Mail) -> str | None:
    """With screen.sender_auth on, only our own server's verdict on the sender counts (see
    _from_our_server); mail it did not vouch for is held, so a forged From gets no answer."""
    policy = mail.screen.sender_auth
    if policy == "off" or not mail.from_addr or mail.released():
        return None
    server = mail.screen.authserv_id.strip()
    froms = len(mail.headers.get_all("From") or ())
    if froms > 1:
        return f"{SENDER_AUTH} failed: the message has {froms} From fields"
    results = _from_our_server(mail)
    if results is None:
        return (f"{SENDER_AUTH} missing: no Authentication-Results from our server {server} "
                f"(screen.sender_auth = {policy})")
    if results.none:
        return f"{SENDER_AUTH} missing: our server {server} checked nothing (Authentication-Results: none)"
    if results.problem:  # our server writes well-formed fields: an odd one is not a verdict
        return f"{SENDER_AUTH} unreadable: the Authentication-Results of our server {server} ({results.problem})"
    domain = authres.domain_of(mail.from_addr)
    return (_dmarc if policy == "dmarc" else _dkim_spf)(results, domain, server)


def rate_limit(mail: Mail) -> str | None:
    """Over-limit mail from one sender is ignored: it is that sender flooding us."""
    limit = mail.screen.max_per_sender_per_hour
    if limit <= 0 or not mail.from_addr:
        return None
    count = mail.recent_from_sender(mail.from_addr.lower())
    if count >= limit:
        return f"{PER_SENDER_LIMIT}{count} questions from this sender in the last hour; limit {limit})"
    return None


@quarantines
def global_rate_limit(mail: Mail) -> str | None:
    """Over the limit for everyone together, the askers may be innocent: hold their mail where the
    operator sees it and can requeue it (a requeued message is not held again)."""
    limit = mail.screen.max_per_hour
    if limit <= 0 or mail.released():
        return None
    count = mail.recent_overall()
    if count >= limit:
        return (f"{GLOBAL_LIMIT}: {count} questions from all senders in the last hour "
                f"(screen.max_per_hour = {limit}); held back, requeue to answer it")
    return None


# The order in which they are tried, read top to bottom: machine mail first, then whether the
# sender is who they say, then who may ask and how often.
RULES: tuple[Callable[[Mail], str | None], ...] = (
    auto_submitted,
    autoreply_headers,
    autoreply_subject,
    precedence,
    mailing_list,
    bounce,
    own_address,
    loop_header,
    sender_auth,
    allow_list,
    rate_limit,
    global_rate_limit,
)
# The rules that count questions (consultant.recent): the last ones, asked once the others let a
# message through (consultant.screen.limits).
LIMIT_RULES = (rate_limit, global_rate_limit)
assert RULES[-len(LIMIT_RULES):] == LIMIT_RULES
