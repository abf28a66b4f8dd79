"""Screen, parse and draft stored questions: received -> ignored | parsed -> drafted, or quarantined."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session

from . import states
from .batch import (
    Counts,
    Item,
    Outcome,
    StageError,
    findings_json,
    quarantined,
    sender_guess,
    sender_of,
    thread_of,
)
from .config import Settings
from .db import is_sqlite
from .finish import Finisher
from .logs import error, vet
from .mimebounds import Refused, header_block
from .models import Question, QuestionCode, RawMessage, Reply, as_utc, utcnow
from .pool import Pool, Ticket
from .recent import BatchHistory
from .screen import PASS, Verdict, headers_of, screen
from .send import worker_id
from .states import Status

__all__ = ["Counts", "Processor", "StageError", "findings_json", "thread_of"]


@dataclass
class Pending:
    """A batch read and screened, its drafting under way."""

    ids: list[int]
    counts: Counts = field(default_factory=Counts)
    outcomes: list[Outcome] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    history: BatchHistory | None = None


ACTOR = "worker"
WAITING = (Status.RECEIVED, Status.PARSED)


# Built once, run with new parameters per batch (building them again each time was a large share
# of the worker's time).
_ITEMS = select(Question.id, Question.status, Question.attempts, Question.received_at, Question.arrived_at,
                Question.body_downloaded, Question.size, Question.codes, Question.modifiers, Question.from_name,
                Question.subject, Question.new_text).where(Question.id.in_(bindparam("ids", expanding=True)))
_RAWS = select(RawMessage.question_id, RawMessage.raw).where(
    RawMessage.question_id.in_(bindparam("ids", expanding=True)))
_DELETE_CODES = delete(QuestionCode).where(QuestionCode.question_id.in_(bindparam("ids", expanding=True)))
_INSERT_CODE = insert(QuestionCode)
_INSERT_REPLY = insert(Reply)
# Raw mail read at once: a batch of large messages is read a few at a time, not held whole.
RAW_CHUNK_BYTES = 8 * 1024 * 1024


class Processor:
    """Holds what stays the same between batches: settings, the code lookup and the stop flag.

    A batch is read with a few queries (the questions, their raw mail a few megabytes at a time,
    what the screen's limits count), worked through in memory (screen, parse, extract, look up,
    draft), then written in one transaction with executemany statements: a handful of statements
    per batch instead of about twenty per question.
    """

    def __init__(self, engine: Engine, settings: Settings, stop: threading.Event | None = None,
                 owner: str | None = None):
        self.engine, self.settings = engine, settings
        self.stop = stop or threading.Event()
        self.owner = owner or worker_id()  # whose claim a batch is (host:pid, as for sending)
        self.finisher = Finisher(engine, settings)
        # Reads (the code look-ups, the batch's questions and their mail) go through the finisher's
        # read-only session; each batch's writes through a session of their own.
        self._lookup_session, self.lookup = self.finisher.session, self.finisher.lookup
        # Big batches are read and drafted by extra processes too (worker.processes).
        self.pool = Pool(settings)
        self._pending: Pending | None = None  # the batch being drafted, written by the next step
        self.stepped = Counts()  # what steps between runs wrote (see step)

    def close(self) -> None:
        self.pool.close()
        self.finisher.close()

    def __enter__(self) -> "Processor":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def run_until_done(self) -> Counts:
        """Batch after batch until nothing is waiting (or we are told to stop); the counts of all,
        with those of batches written by `step` since the last call.

        Fresh batches overlap: the next batch is claimed, read and screened while the extra
        processes (consultant.pool) still draft the last one, which is written after that."""
        total, self.stepped = self.stepped, Counts()
        while not self.stop.is_set():
            counts = Counts()
            try:
                while not self.stop.is_set() and self.step(counts):
                    pass
            finally:
                counts.add(self.drain())  # told to stop, or the database went away: write what we can
            counts.add(self._retried())
            total.add(counts)
            if counts.handled == 0:
                break
        return total

    def step(self, counts: Counts | None = None) -> bool:
        """Claim, read and screen the next fresh batch, then write the one before it (drafted by
        now, or finished here); False when there was no fresh batch. The fetch calls this after
        each batch it stores, so a backlog is drafted while the rest of it is fetched."""
        self.finisher.refresh()
        ids = self.claim(self.settings.worker.batch_size, retried=False)
        before = self._pending
        carried = before.history.own_passes() if before is not None and before.history else ()
        self._pending = self._prepare(ids, carried) if ids else None
        if before is not None:
            (counts if counts is not None else self.stepped).add(self._complete(before))
        return self._pending is not None

    def drain(self) -> Counts:
        """Write the batch still being drafted, if any."""
        pending, self._pending = self._pending, None
        return self._complete(pending) if pending is not None else Counts()

    def run_once(self) -> Counts:
        """Process one bounded batch of received (and leftover parsed) questions; return counts."""
        self.finisher.refresh()
        fresh = self.claim(self.settings.worker.batch_size, retried=False)
        if fresh:
            return self._complete(self._prepare(fresh))
        return self._retried()

    def _retried(self) -> Counts:
        """A worker died while these were in its batch: one at a time now, here."""
        counts = Counts()
        for _ in range(self.settings.worker.batch_size):
            if self.stop.is_set():
                break
            retried = self.claim(1, retried=True)
            if not retried:
                break
            self.finisher.refresh()
            counts.add(self._complete(self._prepare(retried)))
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

    def _prepare(self, ids: list[int], carried=()) -> Pending:
        """Read and screen a claimed batch and hand what passed to the pool; raw mail is read a
        few megabytes at a time, and a part of a big batch is completed before the next is read."""
        pending = Pending(ids)
        try:
            items = self._read(ids)
            pending.counts.lost_race += len(ids) - len(items)
            arrivals = {i.id: i.arrived_at or i.received_at for i in items}
            pending.history = history = BatchHistory(self._lookup_session, arrivals, carried)
            for chunk in self._chunks(items):
                if pending.tickets:  # the last part's mail goes before this part's is read
                    pending.outcomes += self.pool.complete(pending.tickets.pop(), self.finisher, self.stop)
                raws = dict(self._lookup_session.connection().execute(_RAWS, dict(ids=[i.id for i in chunk])).all())
                for item in chunk:
                    item.raw = raws.pop(item.id, None)
                    self._headers(item)
                history.preload(sender_guess(i.headers) for i in chunk if i.headers is not None)
                screened = []
                for item in chunk:
                    if self.stop.is_set():
                        break
                    verdict = self._screen(item, history)
                    if isinstance(verdict, Outcome):
                        pending.outcomes.append(verdict)
                    else:
                        screened.append((item, verdict))
                    item.headers = None
                pending.tickets.append(self.pool.submit(self.finisher, screened, self.stop))
        finally:
            self._lookup_session.rollback()  # the reading is done: no snapshot held while writing
        return pending

    def _complete(self, pending: Pending) -> Counts:
        """Wait for the batch's drafts and write the batch."""
        for ticket in pending.tickets:
            pending.outcomes += self.pool.complete(ticket, self.finisher, self.stop)
        for outcome in pending.outcomes:
            outcome.item.raw = None
        pending.counts.add(self._write(pending.ids, pending.outcomes))
        return pending.counts

    def _read(self, ids: list[int]) -> list[Item]:
        """The batch's questions still waiting, in id order (mail is answered in arrival order)."""
        rows = self._lookup_session.connection().execute(_ITEMS, dict(ids=ids)).all()
        items = [Item(r.id, Status(r.status), r.attempts, as_utc(r.received_at), as_utc(r.arrived_at),
                      r.body_downloaded, r.size or 0, r.codes, r.modifiers, r.from_name, r.subject, r.new_text)
                 for r in rows if r.status in WAITING]
        return sorted(items, key=lambda i: i.id)

    @staticmethod
    def _chunks(items: list[Item]):
        chunk, size = [], 0
        for item in items:
            if chunk and size + item.size > RAW_CHUNK_BYTES:
                yield chunk
                chunk, size = [], 0
            chunk.append(item)
            size += item.size
        if chunk:
            yield chunk

    def _headers(self, item: Item) -> None:
        """Parse the header block of a question about to be screened (only one of a bounded size)."""
        if item.raw is None or item.status != Status.RECEIVED or not item.body_downloaded:
            return
        try:
            item.headers = headers_of(header_block(item.raw, self.settings.limits.max_header_bytes))
        except Refused as exc:
            item.refused = exc.reason
        except Exception:  # left to _compute, which quarantines it with the error
            pass

    def _screen(self, item: Item, history: BatchHistory) -> Verdict | Outcome:
        """The screen's verdict on a question, or its outcome when it goes no further. A question
        that passes counts against the rate limits from here on, for the rest of the batch too."""
        if item.attempts > self.settings.limits.max_attempts:
            reason = f"gave up after {item.attempts - 1} attempts that each stopped the worker"
            return quarantined(item, "process", reason)
        if item.raw is None or not item.body_downloaded:
            return quarantined(item, "fetch", "the message body was never downloaded")
        if item.status == Status.PARSED:  # requeued after a failed draft: the reading is stored
            return PASS
        if item.refused:
            return quarantined(item, "parse", item.refused)
        try:
            headers = item.headers if item.headers is not None else \
                headers_of(header_block(item.raw, self.settings.limits.max_header_bytes))
            verdict = screen(headers, self.settings, **history.for_question(item.id))
        except Exception as exc:  # a bug or a message we did not foresee: park it, keep going
            error.exception("question %s: unexpected error while screening", item.id)
            return quarantined(item, "process", f"internal error: {type(exc).__name__}: {str(exc)[:200]}")
        if verdict.action == "quarantine":  # the sender is kept so the operator page can show who
            return quarantined(item, "screen", verdict.reason, from_addr=verdict.sender)
        if verdict.action == "pass":
            history.passed(item.id, sender_of(headers))
        return verdict

    def _write(self, ids: list[int], outcomes: list[Outcome]) -> Counts:
        """Write the batch in one transaction; if the database refuses it (a value it cannot
        store), write them one at a time, quarantining only the question that cannot be stored.
        A lost connection (OperationalError) is an outage: it propagates, nothing is written."""
        try:
            with Session(self.engine) as session:
                counts, done = self._store(session, outcomes)
                self._release(session, ids)
                session.commit()
            self._log(done)
            return counts
        except OperationalError:
            raise
        except SQLAlchemyError:
            error.exception("a batch of %d questions could not be written at once; writing them one by one",
                            len(outcomes))
        counts = Counts()
        for outcome in outcomes:
            with Session(self.engine) as session:
                try:
                    one, done = self._store(session, [outcome])
                    session.commit()
                except OperationalError:
                    raise
                except SQLAlchemyError as exc:
                    session.rollback()
                    error.exception("question %s: what processing made of it could not be stored", outcome.item.id)
                    reason = f"internal error: the database refused it: {type(exc).__name__}"
                    one, done = self._store(session, [quarantined(outcome.item, "process", reason)])
                    session.commit()
            counts.add(one)
            self._log(done)
        with Session(self.engine) as session:
            self._release(session, ids)
            session.commit()
        return counts

    def _store(self, session: Session, outcomes: list[Outcome]) -> tuple[Counts, list[Outcome]]:
        moved = states.transition_many(session, [states.Move(o.item.id, o.item.status, o.steps, o.fields)
                                                 for o in outcomes], ACTOR)
        done = [o for o in outcomes if o.item.id in moved]
        connection = session.connection()
        reparsed = [o.item.id for o in done if o.codes is not None]
        if reparsed:  # a requeued question read again: its codes are the new reading's
            connection.execute(_DELETE_CODES, dict(ids=reparsed))
        codes = [row for o in done for row in o.codes or ()]
        if codes:
            connection.execute(_INSERT_CODE, codes)
        replies = [o.reply for o in done if o.reply]
        if replies:
            connection.execute(_INSERT_REPLY, replies)
        counts = Counts(lost_race=len(outcomes) - len(done))
        for o in done:
            setattr(counts, o.counter, getattr(counts, o.counter) + 1)
        return counts, done

    def _release(self, session: Session, ids: list[int]) -> None:
        """Release the claim with the work: anything left (told to stop) is free again at once."""
        session.execute(update(Question).where(Question.id.in_(ids), Question.processing_by == self.owner)
                        .values(processing_until=None).execution_options(synchronize_session=False))

    @staticmethod
    def _log(done: list[Outcome]) -> None:
        for o in done:
            if o.log:
                vet.info(*o.log)
