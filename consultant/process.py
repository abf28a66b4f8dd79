"""Screen, parse and draft stored questions: received -> ignored | parsed -> drafted, or quarantined."""
from __future__ import annotations

import gc
import threading
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from datetime import timedelta

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session

from . import states
from .batch import Counts, Item, Outcome, StageError, findings_json, quarantined, thread_of
from .checkpoint import Checkpointer
from .config import Settings
from .db import execute_many, is_sqlite
from .finish import Finisher, ignored
from .logs import error, vet
from .models import Question, QuestionCode, Reply, as_utc, utcnow
from .pool import Pool, Ticket
from .recent import BatchHistory, requeued
from .screen import limits
from .send import worker_id
from .states import Status

__all__ = ["Counts", "Processor", "StageError", "findings_json", "thread_of"]


@dataclass
class Pending:
    """A batch read and screened, its drafting under way."""

    ids: list[int]
    counts: Counts = field(default_factory=Counts)
    outcomes: list[Outcome] = field(default_factory=list)
    ticket: Ticket | None = None


ACTOR = "worker"
DEPTH = 2  # fresh batches being drafted at once while the worker fetches, claims and writes
WAITING = (Status.RECEIVED, Status.PARSED)


# Built once, run with new parameters per batch (building them again each time was a large share
# of the worker's time).
_ITEMS = select(Question.id, Question.status, Question.attempts, Question.received_at, Question.arrived_at,
                Question.body_downloaded, Question.size, Question.codes, Question.modifiers, Question.from_name,
                Question.subject, Question.new_text).where(Question.id.in_(bindparam("ids", expanding=True)))
_DELETE_CODES = delete(QuestionCode).where(QuestionCode.question_id.in_(bindparam("ids", expanding=True)))
_INSERT_CODE = insert(QuestionCode)
_INSERT_REPLY = insert(Reply)


class Processor:
    """Holds what stays the same between batches: settings, the code lookup and the stop flag.

    A batch is read with a few queries (the questions; their raw mail a chunk at a time, by whoever
    works on that chunk; what the screen's limits count), worked through in memory (screen, parse,
    extract, look up, draft, then the rate limits in order), then written in one transaction with
    executemany statements: a handful of statements per batch instead of about twenty per question.
    """

    def __init__(self, engine: Engine, settings: Settings, stop: threading.Event | None = None,
                 owner: str | None = None):
        self.engine, self.settings = engine, settings
        self.stop = stop or threading.Event()
        self.owner = owner or worker_id()  # whose claim a batch is (host:pid, as for sending)
        # Big batches are read and drafted by extra processes too (worker.processes).
        self.pool = Pool(settings)
        self.checkpointer = Checkpointer(engine)  # SQLite: the WAL copied back in a thread, after each write
        self._pending: deque[Pending] = deque()  # batches being drafted, oldest first (at most DEPTH)
        self.stepped = Counts()  # what steps between runs wrote (see step)
        self._ready = False  # whether the finisher's code index was read (see _complete)

    @cached_property
    def finisher(self) -> Finisher:
        """Made when a claim first finds work. Its code index (which takes a while to read) is read
        when the worker completes its first batch (see _complete): the extra processes draft meanwhile."""
        return Finisher(self.engine, self.settings)

    @property
    def _lookup_session(self) -> Session:
        """Reads (the code look-ups, the batch's questions and their mail) go through the
        finisher's read-only session; each batch's writes through a session of their own."""
        return self.finisher.session

    @property
    def lookup(self):
        return self.finisher.lookup

    def close(self) -> None:
        self.pool.close()
        if "finisher" in self.__dict__:
            self.finisher.close()
        self.checkpointer.close()

    def __enter__(self) -> "Processor":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def run_until_done(self) -> Counts:
        """Batch after batch until nothing is waiting (or we are told to stop); the counts of all,
        with those of batches written by `step` since the last call.

        Fresh batches overlap: the next batch is claimed and handed out while the extra processes
        (consultant.pool) still draft the last one, which is written after that."""
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
        self.checkpointer.poke()  # every poll, so what others commit here (the sender) is copied back too
        return total

    def step(self, counts: Counts | None = None) -> bool:
        """Claim the next fresh batch and hand it out, then write the oldest one being drafted once
        DEPTH are (or when there was no fresh batch: then False). The fetch calls this after each
        batch it stores, so a backlog is drafted while the rest of it is fetched; the extra
        processes have a batch to draft while the worker writes one and fetches the next."""
        ids = self._claim_fresh()
        if ids:
            self._pending.append(self._prepare(ids))
        if self._pending and (len(self._pending) > DEPTH or not ids):
            (counts if counts is not None else self.stepped).add(self._complete(self._pending.popleft()))
        return bool(ids)

    def _claim_fresh(self) -> list[int]:
        """Claim the next fresh batch with new codes and releases read for it: before the claim
        once the finisher is made (which also clears a read an outage broke, so the poll after it
        recovers), else when the claim finds work (a poll with nothing to do never reads the code
        index)."""
        made = "finisher" in self.__dict__
        if made:
            self.finisher.refresh()
        ids = self.claim(self.settings.worker.batch_size, retried=False)
        if ids and not made:
            self.finisher.refresh()
        return ids

    def drain(self) -> Counts:
        """Write the batches still being drafted, in order. If one cannot be written (the database
        went away), the rest are dropped too: their claims run out and they are tried again."""
        pending, self._pending, counts = list(self._pending), deque(), Counts()
        try:
            while pending:
                counts.add(self._complete(pending.pop(0)))
        finally:
            for left in pending:
                self.pool.abandon(left.ticket)
        return counts

    def run_once(self) -> Counts:
        """Process one bounded batch of received (and leftover parsed) questions; return counts."""
        fresh = self._claim_fresh()
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

    def _prepare(self, ids: list[int]) -> Pending:
        """Read a claimed batch and hand it to the pool, which screens, reads and drafts it (mail
        is read a chunk at a time by whoever takes the chunk)."""
        pending, work = Pending(ids), []
        try:
            items = self._read(ids)
            pending.counts.lost_race += len(ids) - len(items)
            # Whether an operator requeued them, for the sender check (global limit: see _limits).
            released = requeued(self._lookup_session, [i.id for i in items]) \
                if items and self.settings.screen.sender_auth != "off" else set()
        finally:
            self._lookup_session.rollback()  # the reading is done: no snapshot held while writing
        for item in items:
            if item.attempts > self.settings.limits.max_attempts:
                reason = f"gave up after {item.attempts - 1} attempts that each stopped the worker"
                pending.outcomes.append(quarantined(item, "process", reason))
            elif not item.body_downloaded:
                pending.outcomes.append(quarantined(item, "fetch", "the message body was never downloaded"))
            else:
                work.append((item, item.id in released))
        pending.ticket = self.pool.submit(self.finisher, work, self.stop)
        return pending

    def _complete(self, pending: Pending) -> Counts:
        """Wait for the batch's drafts, ask the rate limits in order, and write the batch."""
        if not self._ready:  # the worker's own code index, read while the extra processes draft
            try:
                self.finisher.ready()
            except BaseException:
                self.pool.abandon(pending.ticket)  # its claims run out and it is tried again
                raise
            self._ready = True
            if gc.get_freeze_count():  # this process keeps what it holds for good out of the collector's
                gc.freeze()            # passes (the commands do, see cli.mail): the code index too
        outcomes = pending.outcomes + self.pool.complete(pending.ticket, self.finisher, self.stop)
        pending.counts.add(self._write(pending.ids, self._limits(outcomes)))
        self.checkpointer.poke()
        return pending.counts

    def _limits(self, outcomes: list[Outcome]) -> list[Outcome]:
        """The screen's last rules, the rate limits, for the questions its other rules let through,
        in id order: one that passes counts against the limits for the rest of the batch (even if
        it was then quarantined at parse). One held or ignored by a limit loses its draft."""
        waiting = sorted((o for o in outcomes if o.limited), key=lambda o: o.item.id)
        if not waiting:
            return outcomes
        changed: dict[int, Outcome] = {}
        try:
            history = BatchHistory(self._lookup_session,
                                   {o.item.id: o.item.arrived_at or o.item.received_at for o in outcomes})
            history.preload(o.sender for o in waiting)
            for o in waiting:
                try:
                    verdict = limits(o.sender, self.settings, **history.for_question(o.item.id))
                except Exception as exc:  # a bug: park the question, keep going
                    error.exception("question %s: unexpected error while screening", o.item.id)
                    reason = f"internal error: {type(exc).__name__}: {str(exc)[:200]}"
                    changed[o.item.id] = quarantined(o.item, "process", reason)
                    continue
                if verdict.action == "pass":
                    history.passed(o.item.id, o.sender)
                elif verdict.action == "quarantine":  # the sender is kept so the operator page can show who
                    changed[o.item.id] = quarantined(o.item, "screen", verdict.reason, from_addr=verdict.sender)
                elif o.reading is not None:
                    changed[o.item.id] = ignored(o.item, verdict, o.reading)
                # else it could not be read: its quarantine at parse stands, as if screened first
        finally:
            self._lookup_session.rollback()
        return [changed.get(o.item.id, o) for o in outcomes]

    def _read(self, ids: list[int]) -> list[Item]:
        """The batch's questions still waiting, in id order (mail is answered in arrival order)."""
        rows = self._lookup_session.connection().execute(_ITEMS, dict(ids=ids)).all()
        items = [Item(r.id, Status(r.status), r.attempts, as_utc(r.received_at), as_utc(r.arrived_at),
                      r.body_downloaded, r.size or 0, r.codes, r.modifiers, r.from_name, r.subject, r.new_text)
                 for r in rows if r.status in WAITING]
        return sorted(items, key=lambda i: i.id)

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
        execute_many(connection, _INSERT_CODE, codes)
        execute_many(connection, _INSERT_REPLY, [o.reply for o in done if o.reply])
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
