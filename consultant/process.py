"""Screen, parse and draft stored questions: received -> ignored | parsed -> drafted, or quarantined."""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from datetime import timedelta

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from . import recent, states
from .config import Settings
from .analysis import analyse
from .checks import releases_in_force
from .db import is_sqlite
from .draft import draft_reply, safe_address
from .extract import Findings, FoundCode, find_codes
from .logs import error, redact, vet
from .lookup import Lookup
from .mimebounds import Refused, header_block
from .models import Question, QuestionCode, RawMessage, Reply, utcnow
from .redact import mask, masked_fields
from .reading import UnreadableMessage, decode_header_value, parse_address, parse_msg_ids, read_message
from .screen import headers_of, screen
from .send import worker_id
from .states import Status

ACTOR = "worker"
WAITING = (Status.RECEIVED, Status.PARSED)


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


# Built once, run with new parameters per question (building them again each time was a large share
# of the worker's time).
_DELETE_CODES = delete(QuestionCode).where(QuestionCode.question_id == bindparam("qid"))
_INSERT_CODE = insert(QuestionCode)
_INSERT_REPLY = insert(Reply)


def _index_codes(session: Session, question_id: int, findings: Findings) -> None:
    """One question_code row per code found (asked wins over quoted), replacing any from an earlier
    reading of the same question (a requeue parses it again)."""
    session.execute(_DELETE_CODES, dict(qid=question_id))
    found: dict[tuple[str, str], bool] = {}
    for f in findings.codes:
        found[(f.system, f.code)] = found.get((f.system, f.code), True) and f.quoted
    if found:
        session.execute(_INSERT_CODE, [dict(question_id=question_id, system=system, code=code, quoted=quoted)
                                       for (system, code), quoted in found.items()])


def findings_json(findings: Findings) -> list[dict]:
    return [dict(asdict(f), spans=[list(s) for s in f.spans]) for f in findings.codes]


class Processor:
    """Holds what stays the same between batches: settings, the code lookup and the stop flag."""

    def __init__(self, engine: Engine, settings: Settings, stop: threading.Event | None = None,
                 owner: str | None = None):
        self.engine, self.settings = engine, settings
        self.stop = stop or threading.Event()
        self.owner = owner or worker_id()  # whose claim a batch is (host:pid, as for sending)
        self._lookup_session = Session(engine.execution_options(readonly=True))
        self.lookup = Lookup(self._lookup_session)
        # The same for every question: worked out once (templates_dir resolves a path, and
        # mail_domain may ask the resolver for this host's name).
        self.templates, self.domain = settings.templates_dir(), settings.mail_domain()
        self.releases: dict | None = None  # the releases in force, looked up once per batch

    def close(self) -> None:
        self._lookup_session.close()

    def __enter__(self) -> "Processor":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def run_until_done(self) -> Counts:
        """Batch after batch until nothing is waiting (or we are told to stop); the counts of all."""
        total = Counts()
        while not self.stop.is_set():
            counts = self.run_once()
            total.add(counts)
            if counts.handled == 0:
                break
        return total

    def run_once(self) -> Counts:
        """Process one bounded batch of received (and leftover parsed) questions; return counts."""
        try:
            self.lookup.refresh()
            self.releases = releases_in_force(self._lookup_session)
        finally:
            # End the read snapshot so the next batch sees new data; after a database outage this
            # also clears the failed transaction, so the next poll can recover.
            self._lookup_session.rollback()
        limit = self.settings.worker.batch_size
        counts = Counts()
        fresh = self.claim(limit, retried=False)
        if fresh:
            counts.add(self._batch(fresh))
            return counts
        for _ in range(limit):  # a worker died while these were in its batch: one at a time now
            if self.stop.is_set():
                break
            retried = self.claim(1, retried=True)
            if not retried:
                break
            counts.add(self._batch(retried))
        return counts

    def claim(self, limit: int, retried: bool) -> list[int]:
        """Take up to `limit` waiting questions (fresh ones, or with `retried` those a worker died
        on) and count an attempt on each, committed before any is worked on, so a message that
        kills the worker is noticed.

        On PostgreSQL several workers share the queue: rows another worker is claiming at this
        moment are skipped (FOR UPDATE SKIP LOCKED), and a claimed row carries a lease
        (processing_by, processing_until: worker.lease) that the others respect until it runs
        out, so nobody counts an attempt on another's batch. SQLite has one writer at a time
        (BEGIN IMMEDIATE) and one worker per file: the lease is written there but not waited for,
        so a restarted worker takes its unfinished batch back at once.
        """
        now = utcnow()
        tried = Question.attempts > 0 if retried else Question.attempts == 0
        query = select(Question.id).where(Question.status.in_(WAITING), tried)
        if not is_sqlite(self.engine):
            free = or_(Question.processing_until.is_(None), Question.processing_until < now,
                       Question.processing_by == self.owner)
            query = query.where(free).with_for_update(skip_locked=True)
        with Session(self.engine) as session:
            # Retried ones fewest attempts first: the one a worker just died on waits behind those
            # it has not been tried alone yet, so a worker killed again and again (a crash loop, a
            # deploy) spreads the blame instead of charging whichever message happens to come first.
            order = (Question.attempts, Question.id) if retried else (Question.id,)
            ids = list(session.execute(query.order_by(*order).limit(limit)).scalars())
            if ids:
                until = now + timedelta(seconds=self.settings.worker.lease)
                session.execute(update(Question).where(Question.id.in_(ids))
                                .values(attempts=Question.attempts + 1, processing_by=self.owner,
                                        processing_until=until)
                                .execution_options(synchronize_session=False))
            session.commit()
        return ids

    def _batch(self, ids: list[int]) -> Counts:
        counts = Counts()
        with Session(self.engine) as session:
            for qid in ids:
                if self.stop.is_set():
                    break
                self._one(session, qid, counts)
            # Release the claim with the work: anything left (told to stop) is free again at once.
            session.execute(update(Question).where(Question.id.in_(ids), Question.processing_by == self.owner)
                            .values(processing_until=None).execution_options(synchronize_session=False))
            session.commit()
        return counts

    def _one(self, session: Session, qid: int, counts: Counts) -> None:
        question = session.get(Question, qid)
        if question is None or question.status not in (Status.RECEIVED, Status.PARSED):
            counts.lost_race += 1
            return
        status = Status(question.status)
        if question.attempts > self.settings.limits.max_attempts:
            reason = f"gave up after {question.attempts - 1} attempts that each stopped the worker"
            self._quarantine(session, question, status, "process", reason, counts)
            return
        try:
            with session.begin_nested():
                outcome = self._advance(session, question, status)
        except StageError as exc:
            self._quarantine(session, question, status, exc.stage, exc.reason, counts, **exc.fields)
            return
        except Exception as exc:  # a bug or a message we did not foresee: park it, keep going
            error.exception("question %s: unexpected error while processing", qid)
            reason = f"internal error: {type(exc).__name__}: {str(exc)[:200]}"
            self._quarantine(session, question, status, "process", reason, counts)
            return
        setattr(counts, outcome, getattr(counts, outcome) + 1)

    def _quarantine(self, session, question, status, stage, reason, counts, **fields) -> None:
        if states.transition(session, question.id, status, Status.QUARANTINED, ACTOR, reason, stage=stage,
                             **fields):
            vet.info("question %s quarantined at %s: %s", question.id, stage, reason)
            counts.quarantined += 1
        else:
            counts.lost_race += 1

    def _advance(self, session: Session, question: Question, status: Status) -> str:
        raw = session.get(RawMessage, question.id)
        if raw is None or not question.body_downloaded:
            raise StageError("fetch", "the message body was never downloaded")
        if status == Status.PARSED:  # requeued after a failed draft: the reading is stored
            return self._draft(session, question, thread_of(raw.raw), findings_from_json(question))
        limits = self.settings.limits
        try:  # the screen reads only the header block, and only one of a bounded size
            headers = headers_of(header_block(raw.raw, limits.max_header_bytes))
        except Refused as exc:
            raise StageError("parse", exc.reason)
        verdict = screen(headers, self.settings, **recent.history(session, question.id))
        if verdict.action == "quarantine":  # the sender is kept so the operator page can show who
            raise StageError("screen", verdict.reason, from_addr=verdict.sender)
        try:
            reading = read_message(raw.raw, **limits.reading())
        except UnreadableMessage as exc:
            raise StageError("parse", exc.reason)
        redacting = self.settings.privacy.redact_identifiers
        # Lower-case, so the per-sender limit (consultant.recent) compares addresses with the index.
        who = dict(from_addr=reading.from_addr.lower() if reading.from_addr else None,
                   from_name=reading.from_name[:200] or None,
                   subject=mask(reading.subject) if redacting else reading.subject, sent_date=reading.date)
        if verdict.action == "ignore":
            if not states.transition(session, question.id, Status.RECEIVED, Status.IGNORED, ACTOR,
                                     verdict.reason, stage="screen", **who):
                return "lost_race"
            vet.info("question %s from %s ignored by %s: %s", question.id, redact(reading.from_addr),
                     verdict.rule, verdict.reason)
            return "ignored"
        # Codes are found in the original text; with redaction on, what is stored (and what the
        # reviewer and the draft see) is masked to the same length, so the code spans still line up.
        findings = find_codes(reading.new_text, self.lookup.index, reading.quoted_text)
        if len(findings.codes) > limits.max_codes:  # each is looked up and answered: bounded work
            raise StageError("parse", f"too many codes: {len(findings.codes)} different codes, more "
                                      f"than {limits.max_codes} (limits.max_codes)")
        texts = dict(new_text=reading.new_text, quoted_text=reading.quoted_text, signature=reading.signature)
        if redacting:
            texts = masked_fields([s for f in findings.codes for s in f.spans], **texts)
        if not states.transition(
                session, question.id, Status.RECEIVED, Status.PARSED, ACTOR, None, **who,
                body_source=reading.body_source, **texts,
                attachments=[asdict(a) for a in reading.attachments], defects=reading.defects,
                codes=findings_json(findings), modifiers=findings.modifiers):
            return "lost_race"
        _index_codes(session, question.id, findings)
        # What the draft reads of the question is what was just stored: no need to load it again.
        stored = dict(from_name=who["from_name"], subject=who["subject"], new_text=texts["new_text"])
        thread = Thread(reading.reply_to or reading.from_addr, reading.message_id, reading.references)
        return self._draft(session, question, thread, findings, reading.new_text, **stored)

    def _draft(self, session: Session, question: Question, thread: "Thread", findings: Findings,
               original: str | None = None, **stored) -> str:
        """Draft the reply; `stored` (from_name, subject, new_text) are the question's columns when
        they were written in this transaction, else they are read from `question`."""
        from_name, subject, new_text = (stored["from_name"], stored["subject"], stored["new_text"]) if stored \
            else (question.from_name, question.subject, question.new_text)
        to_addr = safe_address(thread.reply_to)
        if not to_addr:
            raise StageError("draft", "no address to reply to (From and Reply-To are unusable)")
        text = original if original is not None else new_text or ""
        found = analyse(self.lookup, findings, text, question.received_at.date(), self.releases)
        reply = draft_reply(
            question_id=question.id, templates=self.templates,
            domain=self.domain, service_name=self.settings.service.name,
            from_name=from_name or "", to_addr=to_addr, subject=subject or "",
            message_id=thread.message_id, references=thread.references,
            new_text=new_text or "", findings=findings, facts=found.facts,
            warnings=found.warnings(), suggestions=found.suggestions)
        if not states.transition(session, question.id, Status.PARSED, Status.DRAFTED, ACTOR,
                                 reply.kind, attempts=0, analysis=found.as_json()):
            return "lost_race"
        session.execute(_INSERT_REPLY, dict(
            question_id=question.id, purpose="answer", kind=reply.kind, to_addr=reply.to_addr,
            subject=reply.subject, text=reply.text, html=reply.html, message_id=reply.message_id,
            in_reply_to=reply.in_reply_to, references=reply.references, created_at=utcnow()))
        vet.info("question %s drafted as %s", question.id, reply.kind)
        return "drafted"


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


def findings_from_json(question: Question) -> Findings:
    codes = [FoundCode(**dict(c, spans=[tuple(s) for s in c.get("spans", [])])) for c in question.codes or []]
    return Findings(codes=codes, modifiers=list(question.modifiers or []))
