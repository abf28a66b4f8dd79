"""Screen: decide from the headers alone whether a message is a question to answer."""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from .config import Settings
from .reading import decode_header_value, parse_address
from .rules import LIMIT_RULES, RULES, Mail

MESSAGE_RULES = tuple(rule for rule in RULES if rule not in LIMIT_RULES)

_HEADER_PARSER = BytesHeaderParser(policy=compat32)


@dataclass(frozen=True)
class Verdict:
    action: str  # "pass" | "ignore" | "quarantine"
    rule: str = ""
    reason: str = ""
    sender: str | None = None  # the From address, lower-case, for the record of what was held


PASS = Verdict("pass")


def headers_of(raw: bytes) -> Message:
    return _HEADER_PARSER.parsebytes(raw)


class HeaderIndex:
    """`in`, get() and get_all() of a Message, answered from the field names lower-cased once:
    Message lower-cases every field name again on each call, and the rules make twenty. Values
    come through the message's policy, as Message gives them."""

    __slots__ = ("_fetch", "_fields")

    def __init__(self, message: Message) -> None:
        self._fetch = message.policy.header_fetch_parse
        self._fields: dict[str, list[tuple[str, str]]] = {}
        for name, value in message.raw_items():
            self._fields.setdefault(name.lower(), []).append((name, value))

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._fields

    def get(self, name: str, failobj=None):
        fields = self._fields.get(name.lower())
        return self._fetch(*fields[0]) if fields else failobj

    def get_all(self, name: str, failobj=None):
        fields = self._fields.get(name.lower())
        return [self._fetch(*field) for field in fields] if fields else failobj


def screen(headers: Message, settings: Settings,
           recent_from_sender: Callable[[str], int] = lambda addr: 0, *,
           recent_overall: Callable[[], int] = lambda: 0,
           released: Callable[[], bool] = lambda: False) -> Verdict:
    """Run the rules in order; the first that objects decides: ignore, or quarantine for the rules
    that hold mail for an operator. Raises nothing for odd headers.

    The callables are asked only when a rule needs them: `recent_from_sender(address)` counts the
    questions from that (lower-case) address in the last hour, `recent_overall()` those from all
    senders, and `released()` says whether an operator requeued this message.

    The same in two steps (a batch's questions are screened that way, see consultant.process):
    `prescreen` runs the rules that read only the message, `limits` the rate limits after them.
    """
    released = functools.cache(released)
    verdict, from_addr = prescreen(headers, settings, released)
    return verdict or limits(from_addr, settings, recent_from_sender, recent_overall=recent_overall, released=released)


def prescreen(headers: Message, settings: Settings,
              released: Callable[[], bool] = lambda: False) -> tuple[Verdict | None, str | None]:
    """The rules before the rate limits, which read only the message: (the verdict of the first
    that objects, or None; the From address as the rules read it)."""
    headers = HeaderIndex(headers)
    _name, from_addr = parse_address(decode_header_value(headers.get("From", "")))
    mail = Mail(headers=headers, from_addr=from_addr,
                subject=decode_header_value(headers.get("Subject", "")),
                service=settings.service, screen=settings.screen, released=released)
    return _verdict(mail, MESSAGE_RULES), from_addr


_NO_HEADERS = Message()  # the rate limits read none


def limits(from_addr: str | None, settings: Settings,
           recent_from_sender: Callable[[str], int] = lambda addr: 0, *,
           recent_overall: Callable[[], int] = lambda: 0,
           released: Callable[[], bool] = lambda: False) -> Verdict:
    """The rate limits, for a message `prescreen` let through from `from_addr`; PASS if none objects."""
    mail = Mail(headers=_NO_HEADERS, from_addr=from_addr, subject="", service=settings.service,
                screen=settings.screen, recent_from_sender=recent_from_sender, recent_overall=recent_overall,
                released=released)
    verdict = _verdict(mail, LIMIT_RULES)
    if verdict is not None:
        return verdict
    if not from_addr:
        # Not a machine's mail, but nobody to answer either: a person must look at it.
        return Verdict("quarantine", "sender", "no usable sender address (From is missing or unreadable)")
    return PASS


def _verdict(mail: Mail, rules) -> Verdict | None:
    for rule in rules:
        reason = rule(mail)
        if reason:
            action = "quarantine" if getattr(rule, "quarantines", False) else "ignore"
            return Verdict(action, rule.__name__, reason, mail.from_addr.lower()[:320] if mail.from_addr else None)
    return None
