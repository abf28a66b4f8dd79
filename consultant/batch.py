"""The pieces of a processing batch (consultant.process): what is read of each question, what
processing made of it, and the counts; no database access here."""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from .extract import Findings, FoundCode
from .reading import decode_header_value, parse_address, parse_msg_ids
from .screen import headers_of
from .states import Status


@dataclass
class Counts:
    drafted: int = 0
    ignored: int = 0
    quarantined: int = 0
    lost_race: int = 0

    @property
    def handled(self) -> int:
        return self.drafted + self.ignored + self.quarantined + self.lost_race

    def add(self, other: "Counts") -> None:
        for name in ("drafted", "ignored", "quarantined", "lost_race"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class StageError(Exception):
    """An item this stage cannot handle: quarantine it with this reason."""

    def __init__(self, stage: str, reason: str, **fields):
        super().__init__(reason)
        self.stage, self.reason, self.fields = stage, reason, fields  # fields: columns to record too


def code_rows(question_id: int, findings: Findings) -> list[dict]:
    """One question_code row per code found (asked wins over quoted)."""
    found: dict[tuple[str, str], bool] = {}
    for f in findings.codes:
        found[(f.system, f.code)] = found.get((f.system, f.code), True) and f.quoted
    return [dict(question_id=question_id, system=system, code=code, quoted=quoted)
            for (system, code), quoted in found.items()]


_FOUND_FIELDS = tuple(f.name for f in fields(FoundCode))


def findings_json(findings: Findings) -> list[dict]:
    """The codes as stored in question.codes (what dataclasses.asdict gives, without its deep copy)."""
    return [dict({name: getattr(f, name) for name in _FOUND_FIELDS}, modifiers=list(f.modifiers),
                 spans=[list(s) for s in f.spans]) for f in findings.codes]


@dataclass
class Item:
    """One claimed question as its batch reads it."""

    id: int
    status: Status
    attempts: int
    received_at: datetime
    arrived_at: datetime | None
    body_downloaded: bool
    size: int
    codes: list | None
    modifiers: list | None
    from_name: str | None
    subject: str | None
    new_text: str | None
    raw: bytes | None = None  # read by whoever works on it (consultant.finish), dropped after


@dataclass
class Outcome:
    """What processing made of one question: written with the rest of its batch."""

    item: Item
    counter: str  # drafted | ignored | quarantined
    steps: tuple[tuple[Status, str | None], ...]  # the moves from the item's status, with reasons
    fields: dict  # the other columns to set
    codes: list[dict] | None = None  # question_code rows, replacing any of an earlier reading
    reply: dict | None = None
    log: tuple = ()  # the vet line: format and arguments
    # Let through by the screen's rules that read the message: the rate limits, which count the
    # batch in order, are asked by the worker before it writes (consultant.process), with `sender`.
    limited: bool = False
    sender: str | None = None
    # What was read of the sender and subject, for an ignored outcome if a rate limit says so.
    reading: tuple[dict, str | None] | None = None


def quarantined(item: Item, stage: str, reason: str, **fields) -> Outcome:
    return Outcome(item, "quarantined", ((Status.QUARANTINED, reason),), dict(fields, stage=stage),
                   log=("question %s quarantined at %s: %s", item.id, stage, reason))


@dataclass
class Thread:
    """Where the reply goes and what it answers, from the question's own headers."""

    reply_to: str | None
    message_id: str | None
    references: list[str]


def thread_of(raw: bytes) -> Thread:
    headers = headers_of(raw)
    _, reply_to = parse_address(decode_header_value(headers.get("Reply-To", "")))
    _, sender = parse_address(decode_header_value(headers.get("From", "")))
    ids = parse_msg_ids(str(headers.get("Message-ID", "")))
    return Thread(reply_to or sender, ids[0] if ids else None,
                  parse_msg_ids(str(headers.get("References", ""))))


def findings_from_json(question) -> Findings:
    codes = [FoundCode(**dict(c, spans=[tuple(s) for s in c.get("spans", [])])) for c in question.codes or []]
    return Findings(codes=codes, modifiers=list(question.modifiers or []))
