"""Operator actions: requeue quarantined mail, inject a message file, inspect files without side effects."""
from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from . import queries, states
from .config import Settings
from .errors import ConsultantError
from .analysis import analyse
from .extract import find_codes
from .fetch import dedupe_key
from .lookup import Lookup
from .mimebounds import Refused, header_block
from .models import RawMessage, utcnow
from .reading import UnreadableMessage, read_message
from .screen import headers_of, screen
from .states import Status

# Where a quarantined item goes back to, by the stage it was parked at.
REQUEUE_TO = {"screen": Status.RECEIVED, "parse": Status.RECEIVED, "process": Status.RECEIVED,
              "draft": Status.PARSED}


def requeue(session: Session, question_id: int, actor: str) -> Status:
    """quarantined -> the status it had before, so the stages run it again. The caller commits."""
    question = queries.get(session, question_id)
    if question.status != Status.QUARANTINED:
        raise ConsultantError(f"question {question_id} is {question.status}, not quarantined")
    if not question.body_downloaded:
        raise ConsultantError(
            f"question {question_id} was too big to download ({question.size} bytes); raise "
            "limits.max_message_bytes and fetch it again from the mailbox")
    target = REQUEUE_TO.get(question.stage or "", Status.RECEIVED)
    if not states.transition(session, question_id, Status.QUARANTINED, target, actor,
                             f"requeued from {question.stage or 'unknown stage'}", action="requeue",
                             attempts=0):
        raise ConsultantError(f"question {question_id} changed while requeueing; try again")
    return target


def inject(session: Session, raw: bytes, actor: str, source: str) -> int | None:
    """Store a message file as if it had arrived by IMAP; None if it is already stored."""
    key, message_id = dedupe_key(raw)
    qid = states.create(session, actor, dedupe_key=key, message_id=message_id, account="inject",
                        mailbox=source[:200], size=len(raw))
    if qid is not None:
        session.add(RawMessage(question_id=qid, raw=raw))
    return qid


def inspect_file(path: Path, settings: Settings, lookup: Lookup) -> dict:
    """Screen, parse and look up one file with no side effects; a bad file is reported, not raised."""
    result: dict = {"file": str(path), "action": "quarantine", "reason": "", "codes": [], "modifiers": [],
                    "warnings": [], "suggestions": []}
    try:
        raw = path.read_bytes()
    except OSError as exc:
        result["reason"] = f"cannot read the file: {exc.strerror}"
        return result
    try:
        if len(raw) > settings.limits.max_message_bytes:
            result["reason"] = "over limits.max_message_bytes"
            return result
        limits = settings.limits
        verdict = screen(headers_of(header_block(raw, limits.max_header_bytes)), settings)
        if verdict.action != "pass":
            result.update(action=verdict.action, reason=verdict.reason)
            return result
        reading = read_message(raw, **limits.reading())
        findings = find_codes(reading.new_text, lookup.index, reading.quoted_text)
    except (UnreadableMessage, Refused) as exc:
        result["reason"] = exc.reason
        return result
    except Exception as exc:  # inspect scores corpora: one bad file must not stop the run
        result["reason"] = f"internal error: {type(exc).__name__}: {str(exc)[:200]}"
        return result
    codes = []
    for found in findings.codes:
        facts = lookup.facts(found.system, found.code)
        codes.append(dict(code=found.code, system=found.system, quoted=found.quoted,
                          modifiers=found.modifiers, units=found.units, known=facts.known,
                          title=facts.title or None))
    found = analyse(lookup, findings, reading.new_text, (reading.date or utcnow()).date())
    result.update(action="draft", reason="", codes=codes, modifiers=findings.modifiers,
                  warnings=found.warnings(), suggestions=found.suggestions,
                  date_of_service=found.checks.date_of_service)
    return result


def retry(session: Session, question_id: int, actor: str) -> str:
    """failed -> approved (or a failed notice queued again), with a fresh backoff. The caller commits."""
    question = queries.get(session, question_id)
    now = utcnow()
    if question.status == Status.FAILED:
        reply = queries.reply(session, question_id)
        if not states.transition(session, question_id, Status.FAILED, Status.APPROVED, actor,
                                 "retry requested", action="retry"):
            raise ConsultantError(f"question {question_id} changed while retrying; try again")
        reply.send_attempts, reply.first_attempt_at, reply.next_attempt_at = 0, None, now
        reply.failed_at = None
        return "answer"
    notice = queries.reply(session, question_id, "notice")
    if notice is not None and notice.failed_at and notice.sent_at is None:
        notice.to_send, notice.failed_at, notice.send_attempts = True, None, 0
        notice.first_attempt_at, notice.next_attempt_at = None, now
        states.note(session, question_id, actor, "retry", "notice queued again")
        return "notice"
    raise ConsultantError(f"question {question_id} is {question.status}; only failed replies can be retried")
