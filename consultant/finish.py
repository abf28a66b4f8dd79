"""After the screen: read a question, find and look up its codes, draft the reply. Pure work on one
question at a time, with no database writes, so it can run in the worker or in an extra process
(consultant.pool); consultant.process writes what comes out."""
from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from .analysis import analyse
from .batch import (
    Item,
    Outcome,
    StageError,
    Thread,
    code_rows,
    findings_from_json,
    findings_json,
    quarantined,
    thread_of,
)
from .checks import releases_in_force
from .config import Settings
from .draft import draft_reply, environment, safe_address
from .extract import Findings, find_codes
from .extract_tokens import hot
from .logs import error, redact
from .lookup import Lookup
from .models import RawMessage, utcnow
from .reading import Parsed, UnreadableMessage, parse_message, read_parsed
from .redact import mask, masked_fields
from .mimebounds import Refused, header_block
from .screen import PASS, Verdict, headers_of, prescreen
from .states import Status


_RAWS = select(RawMessage.question_id, RawMessage.raw).where(
    RawMessage.question_id.in_(bindparam("ids", expanding=True)))


def warm_up(settings: Settings) -> None:
    """Do now what a process's first question would otherwise do first, and what needs no database:
    compile the finder's patterns and load the reply templates (for an extra process that waits
    for work, see consultant.spares)."""
    hot()
    templates = environment(settings.templates_dir())
    for name in templates.list_templates(filter_func=lambda name: name.startswith("reply/")):
        templates.get_template(name)


def ignored(item: Item, verdict: Verdict, reading: tuple[dict, str | None]) -> Outcome:
    """The outcome of a question the screen ignores, with its sender and subject as read."""
    who, from_addr = reading
    return Outcome(item, "ignored", ((Status.IGNORED, verdict.reason),), dict(who, stage="screen"),
                   log=("question %s from %s ignored by %s: %s", item.id, redact(from_addr), verdict.rule,
                        verdict.reason))


class Finisher:
    """What reads, looks up and drafts a question after the screen: the code look-up, the
    templates and the releases in force. The worker has one; so has each extra process
    (consultant.pool), which makes its own from the settings."""

    def __init__(self, engine: Engine, settings: Settings):
        self.settings = settings
        self.session = Session(engine.execution_options(readonly=True))
        self.lookup = Lookup(self.session)
        # The same for every question: worked out once (templates_dir resolves a path, and
        # mail_domain may ask the resolver for this host's name).
        self.templates, self.domain = settings.templates_dir(), settings.mail_domain()
        self.releases: dict | None = None  # the releases in force, looked up once per batch

    def ready(self) -> None:
        """Read the code index now, if it was not read yet (else the first question reads it)."""
        try:
            self.lookup.load_index()
        finally:
            self.session.rollback()

    def refresh(self) -> None:
        """New codes and releases, once per batch."""
        try:
            self.lookup.refresh()
            self.releases = releases_in_force(self.session)
        finally:
            # End the read snapshot so the next batch sees new data; after a database outage this
            # also clears the failed transaction, so the next poll can recover.
            self.session.rollback()

    def close(self) -> None:
        self.session.close()

    def work(self, chunk: list[tuple[Item, bool]]) -> list[Outcome]:
        """Screen and finish a chunk of claimed questions, each with whether an operator released
        it (requeued it after a hold); their mail is read here, and dropped once done."""
        outcomes = []
        try:
            raws = dict(self.session.connection().execute(_RAWS, dict(ids=[item.id for item, _ in chunk])).all())
            for item, released in chunk:
                item.raw = raws.pop(item.id, None)
                outcomes.append(self.screened(item, released))
                item.raw = None
        finally:
            self.session.rollback()  # the read snapshot (mail, look-ups) is not held between chunks
        return outcomes

    def screened(self, item: Item, released: bool = False) -> Outcome:
        """A question screened by the rules that read the message, then read, looked up and
        drafted if they let it through; the rate limits are left to the worker (Outcome.limited)."""
        if item.raw is None:
            return quarantined(item, "fetch", "the message body was never downloaded")
        if item.status == Status.PARSED:  # requeued after a failed draft: screened and read before
            return self.finish(item, PASS)
        try:
            block = header_block(item.raw, self.settings.limits.max_header_bytes)
            parsed = self._parse(item.raw)
            # The screen reads the header fields of the tree the reading parsed: the same fields a
            # parse of the header block alone finds, unless bytes before the headers were dropped
            # or the message could not be parsed (then the block is parsed for the screen).
            headers = parsed.msg if isinstance(parsed, Parsed) and not parsed.trimmed else headers_of(block)
            verdict, from_addr = prescreen(headers, self.settings, lambda: released)
        except Refused as exc:
            return quarantined(item, "parse", exc.reason)
        except Exception as exc:  # a bug or a message we did not foresee: park it, keep going
            error.exception("question %s: unexpected error while screening", item.id)
            return quarantined(item, "process", f"internal error: {type(exc).__name__}: {str(exc)[:200]}")
        if verdict is not None and verdict.action == "quarantine":  # the sender is kept for the operator
            return quarantined(item, "screen", verdict.reason, from_addr=verdict.sender)
        if verdict is not None:
            return self.finish(item, verdict, parsed)
        outcome = self.finish(item, PASS, parsed)
        outcome.limited, outcome.sender = True, from_addr
        return outcome

    def _parse(self, raw: bytes) -> Parsed | UnreadableMessage:
        """The message parsed within the limits, or why it cannot be (for the parse stage to say)."""
        limits = self.settings.limits
        try:
            return parse_message(raw, max_parts=limits.max_parts, max_depth=limits.max_depth,
                                 max_header_bytes=limits.max_header_bytes, max_lines=limits.max_lines)
        except UnreadableMessage as exc:
            return exc

    def finish(self, item: Item, verdict: Verdict, parsed: Parsed | UnreadableMessage | None = None) -> Outcome:
        """Read, look up and draft a question the screen let through (or ignores: its sender and
        subject are stored too), from its parse if it was parsed already; never raises."""
        seen: dict = {}
        try:
            outcome = self._finish(item, verdict, seen, parsed)
        except StageError as exc:
            outcome = quarantined(item, exc.stage, exc.reason, **exc.fields)
        except Exception as exc:  # a bug or a message we did not foresee: park it, keep going
            error.exception("question %s: unexpected error while processing", item.id)
            outcome = quarantined(item, "process", f"internal error: {type(exc).__name__}: {str(exc)[:200]}")
        outcome.reading = seen.get("reading")
        return outcome

    def _finish(self, item: Item, verdict: Verdict, seen: dict, parsed: Parsed | UnreadableMessage | None) -> Outcome:
        raw = item.raw
        if item.status == Status.PARSED:  # requeued after a failed draft: the reading is stored
            return self._draft(item, thread_of(raw), findings_from_json(item), item.new_text or "",
                               dict(from_name=item.from_name, subject=item.subject, new_text=item.new_text))
        limits = self.settings.limits
        try:
            parsed = parsed if parsed is not None else self._parse(raw)
            if isinstance(parsed, UnreadableMessage):
                raise parsed
            reading = read_parsed(parsed, max_parts=limits.max_parts, max_depth=limits.max_depth,
                                  max_body_chars=limits.max_body_chars)
        except UnreadableMessage as exc:
            raise StageError("parse", exc.reason)
        redacting = self.settings.privacy.redact_identifiers
        # Lower-case, so the per-sender limit (consultant.recent) compares addresses with the index.
        who = dict(from_addr=reading.from_addr.lower() if reading.from_addr else None,
                   from_name=reading.from_name[:200] or None,
                   subject=mask(reading.subject) if redacting else reading.subject, sent_date=reading.date)
        seen["reading"] = (who, reading.from_addr)
        if verdict.action == "ignore":
            return ignored(item, verdict, seen["reading"])
        # Codes are found in the original text; with redaction on, what is stored (and what the
        # reviewer and the draft see) is masked to the same length, so the code spans still line up.
        findings = find_codes(reading.new_text, self.lookup.index, reading.quoted_text)
        if len(findings.codes) > limits.max_codes:  # each is looked up and answered: bounded work
            raise StageError("parse", f"too many codes: {len(findings.codes)} different codes, more "
                                      f"than {limits.max_codes} (limits.max_codes)")
        texts = dict(new_text=reading.new_text, quoted_text=reading.quoted_text, signature=reading.signature)
        if redacting:
            texts = masked_fields([s for f in findings.codes for s in f.spans], **texts)
        parsed = dict(who, body_source=reading.body_source, **texts,
                      attachments=[asdict(a) for a in reading.attachments], defects=reading.defects,
                      codes=findings_json(findings), modifiers=findings.modifiers)
        thread = Thread(reading.reply_to or reading.from_addr, reading.message_id, reading.references)
        # What the draft reads of the question is what is stored with it.
        stored = dict(from_name=who["from_name"], subject=who["subject"], new_text=texts["new_text"])
        return self._draft(item, thread, findings, reading.new_text, stored, parsed)

    def _draft(self, item: Item, thread: "Thread", findings: Findings, original: str, stored: dict,
               parsed: dict | None = None) -> Outcome:
        """Draft the reply. `stored` (from_name, subject, new_text) are the question's columns as
        they will be stored; `parsed`, the reading to store with it when it was read just now."""
        to_addr = safe_address(thread.reply_to)
        if not to_addr:
            raise StageError("draft", "no address to reply to (From and Reply-To are unusable)")
        found = analyse(self.lookup, findings, original, item.received_at.date(), self.releases)
        reply = draft_reply(
            question_id=item.id, templates=self.templates,
            domain=self.domain, service_name=self.settings.service.name,
            from_name=stored["from_name"] or "", to_addr=to_addr, subject=stored["subject"] or "",
            message_id=thread.message_id, references=thread.references,
            new_text=stored["new_text"] or "", findings=findings, facts=found.facts,
            warnings=found.warnings(), suggestions=found.suggestions)
        steps = ((Status.PARSED, None),) if parsed is not None else ()
        return Outcome(
            item, "drafted", steps + ((Status.DRAFTED, reply.kind),),
            dict(parsed or {}, attempts=0, analysis=found.as_json()),
            codes=code_rows(item.id, findings) if parsed is not None else None,
            reply=dict(question_id=item.id, purpose="answer", kind=reply.kind, to_addr=reply.to_addr,
                       subject=reply.subject, text=reply.text, html=reply.html, message_id=reply.message_id,
                       in_reply_to=reply.in_reply_to, references=reply.references, created_at=utcnow()),
            log=("question %s drafted as %s", item.id, reply.kind))
