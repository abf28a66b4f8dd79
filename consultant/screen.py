"""Screen: decide from the headers alone whether a message is a question to answer."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from .config import Settings
from .reading import decode_header_value, parse_address
from .rules import RULES, Mail

_HEADER_PARSER = BytesHeaderParser(policy=compat32)


@dataclass(frozen=True)
class Verdict:
    action: str  # "pass" | "ignore" | "quarantine"
    rule: str = ""
    reason: str = ""


PASS = Verdict("pass")


def headers_of(raw: bytes) -> Message:
    return _HEADER_PARSER.parsebytes(raw)


def screen(headers: Message, settings: Settings,
           recent_from_sender: Callable[[str], int] = lambda addr: 0) -> Verdict:
    """Run the rules in order; the first that objects decides. Raises nothing for odd headers."""
    _name, from_addr = parse_address(decode_header_value(headers.get("From", "")))
    mail = Mail(headers=headers, from_addr=from_addr,
                subject=decode_header_value(headers.get("Subject", "")),
                service=settings.service, screen=settings.screen,
                recent_from_sender=recent_from_sender)
    for rule in RULES:
        reason = rule(mail)
        if reason:
            return Verdict("ignore", rule.__name__, reason)
    if not from_addr:
        # Not a machine's mail, but nobody to answer either: a person must look at it.
        return Verdict("quarantine", "sender", "no usable sender address (From is missing or unreadable)")
    return PASS
