"""Extra processes that screen, read, look up and draft the questions of big batches beside the worker.

The rate limits stay in the worker (they count a batch's questions in order, once it has them all
back), and so does every database write; the rest (consultant.finish: the rules that read only the
message, then reading, look-up, drafting) is pure work on one question, so a backlog spreads it over
the machine's cores. The worker sends chunks of claimed questions down a pipe (their ids and
columns; whoever takes a chunk reads its mail) and works on chunks itself meanwhile; whoever is free
takes the next chunk. An extra process is set going on the first batch big enough to share (one
forked at the command's start, see consultant.spares, or else a fresh interpreter: by then the
worker has threads, and forking is not safe), and is not waited for: until it says it is ready,
the worker does all the work itself.

If an extra process dies, the questions it held are not written: their claim runs out and they are
tried again one at a time in the worker, where a message that kills it is counted as for any crash
(limits.max_attempts). Small batches (a question that just arrived) never leave the worker.
"""
from __future__ import annotations

import gc
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path

from . import spares
from .batch import Item, Outcome
from .config import Settings
from .logs import error, log

CHUNK = 20  # questions sent at a time
MIN_SHARED = 2 * CHUNK  # fewer screened questions than this stay in the worker
IN_FLIGHT = 3  # chunks a process holds at once: one it works on, two waiting (refilled as each comes back)
MAX_PROCESSES = 4
HOLD_BACK = 10  # chunks the worker leaves queued for the extra processes when it works ahead
RAW_CHUNK_BYTES = 8 * 1024 * 1024  # mail read at once: a chunk of big messages holds fewer
GONE = object()  # what a helper's reading thread reports when its process has ended


def chunked(work: list[tuple[Item, bool]]):
    """Chunks of at most CHUNK questions and, past the first, RAW_CHUNK_BYTES of mail: whoever
    takes one reads its mail at once."""
    chunk, size = [], 0
    for entry in work:
        if chunk and (len(chunk) == CHUNK or size + entry[0].size > RAW_CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry[0].size
    if chunk:
        yield chunk


def process_count(setting: int) -> int:
    """worker.processes: -1 means one fewer than the CPU cores (at most MAX_PROCESSES)."""
    if setting >= 0:
        return setting
    return max(0, min(MAX_PROCESSES, (os.cpu_count() or 1) - 1))


def child(fd: int) -> None:
    """An extra process's start (see Helper): the worker's end of the socket is `fd`, and the
    first thing the worker sends is its settings."""
    conn = Connection(fd)
    try:
        settings = conn.recv()
    except (EOFError, OSError):
        return
    serve(settings, conn)


def serve(settings: Settings, conn) -> None:
    """An extra process: finish the chunks the worker sends until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the worker, which closes the pipe
    try:
        _serve(settings, conn)
    except (EOFError, OSError):  # the worker is gone (killed, stopped): so are we
        return
    except Exception as exc:  # the worker goes on without us and says so; no traceback for a user
        error.error("an extra drafting process failed: %s: %s", type(exc).__name__, str(exc)[:300])
        raise SystemExit(1)
    # Told to end: nothing is left to write, so skip the slow tear-down of a full interpreter.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _serve(settings: Settings, conn) -> None:
    from .db import make_engine
    from .finish import Finisher
    from .logs import setup

    setup(settings.log.level, settings.log.file)
    engine = make_engine(settings.database.url)
    finisher, batch = Finisher(engine, settings), None
    finisher.ready()
    gc.freeze()  # what we keep to the end (code, code index) is left out of the collector's passes
    # A thread takes in what the worker sends as it comes, so the worker never waits to send while
    # we wait for it to read our outcomes (two full pipes would be a deadlock).
    inbox: queue.SimpleQueue = queue.SimpleQueue()

    def receive() -> None:
        try:
            while True:
                message = conn.recv()
                inbox.put(message)
                if message is None:
                    return
        except (EOFError, OSError):
            inbox.put(None)

    threading.Thread(target=receive, name="receive", daemon=True).start()
    conn.send("ready")
    while True:
        message = inbox.get()
        if message is None:
            break
        number, releases, chunk = message
        if number != batch:  # a new batch: new codes may have been loaded
            finisher.refresh()
            batch = number
        finisher.releases = releases
        conn.send(finisher.work(chunk))
    finisher.close()
    engine.dispose()


class Ticket:
    """One batch's screened questions on their way through the pool."""

    def __init__(self, number: int, chunks: list[list]):
        self.number, self.queued = number, deque(chunks)
        self.outstanding = len(chunks)  # chunks not finished yet (queued or held by a process)
        self.outcomes: list[Outcome] = []

    def done(self) -> bool:
        return self.outstanding == 0


class Helper:
    """One extra process and the chunks it holds, oldest first, each with its ticket.

    It is either one forked before the worker had threads (consultant.spares) or started as
    `python -c` importing only what drafting needs (multiprocessing's spawn would first import the
    worker's main module again, the whole command line); either talks over a socket pair. A thread
    reads what the process sends as it comes and hands it the next chunk at once (Pool.refill), so
    the process neither waits on a full pipe nor runs dry while the worker is busy fetching or
    writing."""

    def __init__(self, settings: Settings, pool: "Pool", forked: tuple | None = None):
        if forked is not None:  # forked before the worker's threads and connections (consultant.spares)
            self.process, ours = forked
        else:
            ours, theirs = socket.socketpair()
            package_root = str(Path(__file__).resolve().parent.parent)  # this very code, wherever it runs
            env = dict(os.environ,
                       PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
            with theirs:
                self.process = subprocess.Popen(
                    [sys.executable, "-P", "-c", f"from consultant.pool import child; child({theirs.fileno()})"],
                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env)
        self.conn = Connection(ours.detach())
        self.ready, self.broken, self.held = False, False, deque()
        try:
            self.conn.send(settings)
        except OSError:  # it died at once: its reading thread reports it gone
            self.broken = True
        threading.Thread(target=self._receive, args=(pool,), name="drafting-inbox", daemon=True).start()

    def _receive(self, pool: "Pool") -> None:
        try:
            while True:
                message = self.conn.recv()
                with pool.lock:
                    if message == "ready":
                        self.ready = True
                    else:
                        ticket, chunk = self.held.popleft()
                        message = (ticket, chunk, message)
                    pool.refill(self)
                pool.inbox.put((self, message))
        except (EOFError, OSError):  # it ended (or we closed the pipe): the worker sees it gone
            pool.inbox.put((self, GONE))
        except Exception as exc:  # what it sent could not be read: treat it as dead
            error.error("an extra drafting process sent what could not be read: %s", type(exc).__name__)
            pool.inbox.put((self, GONE))

    def send(self, ticket: Ticket, releases, chunk: list) -> None:
        self.conn.send((ticket.number, releases, chunk))
        self.held.append((ticket, chunk))

    def close(self) -> None:
        """Tell it to end and let it go: it has nothing to write, so one that lingers is killed."""
        if self.ready:
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.wait(0.2)
        self.conn.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def wait(self, timeout: float) -> None:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass


class Pool:
    """The worker's extra processes (worker.processes), set going when first needed.

    `submit` queues a batch's questions and returns at once; `complete` returns their outcomes,
    the worker finishing queued chunks itself meanwhile. Between the two the worker may fetch and
    hand out the next batch while the extra processes draft this one. The queues and what each
    process holds are shared with the threads reading the processes (under `lock`).
    """

    def __init__(self, settings: Settings):
        self.settings, self.size = settings, process_count(settings.worker.processes)
        self.helpers: list[Helper] = []
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()  # (helper, message) as their threads read them
        self.tickets: list[Ticket] = []  # open ones, oldest first
        self.lock = threading.Lock()
        self.releases, self.stop = None, threading.Event()  # what the chunks being handed out need
        self.batches = self.deaths = 0
        self.shared = 0  # questions finished by the extra processes

    def wait_ready(self, timeout: float) -> bool:
        """Wait until every extra process started is ready (tests, benchmarks); True if so."""
        deadline = time.monotonic() + timeout
        while not all(h.ready for h in self.helpers) and time.monotonic() < deadline:
            self._collect(timeout=0.05)
        return bool(self.helpers) and all(h.ready for h in self.helpers)

    def close(self) -> None:
        with self.lock:
            helpers, self.helpers, self.tickets = self.helpers, [], []
        if helpers and self.shared:
            log.info("extra drafting processes drafted %d questions", self.shared)
        for helper in helpers:
            helper.close()

    def warm(self, waiting: int) -> None:
        """Start the extra processes now if `waiting` questions are about to come (a backlog being
        fetched), so they are ready when the first batch is screened."""
        if waiting >= MIN_SHARED:
            # Processes forked at the command's start (consultant.spares) first: they are told their
            # settings now, and make their connections while the worker fetches.
            forked = spares.take(self.size - len(self.helpers))
            while len(self.helpers) < self.size:
                helper = Helper(self.settings, self, forked.pop(0) if forked else None)
                log.info("extra drafting process %d set going (%s)", helper.process.pid,
                         "forked at start" if isinstance(helper.process, spares.Forked) else "new interpreter")
                with self.lock:
                    self.helpers.append(helper)

    def submit(self, finisher, work: list[tuple[Item, bool]], stop: threading.Event) -> Ticket:
        """Queue these claimed questions (each with whether it was released; see Finisher.work); a
        small batch (or no extra process) is finished here."""
        self.batches += 1
        chunks = list(chunked(work))
        if self.size == 0 or len(work) < MIN_SHARED:
            ticket = Ticket(self.batches, [])
            for chunk in chunks:
                if stop.is_set():
                    break
                ticket.outcomes += finisher.work(chunk)
            return ticket
        self.warm(len(work))
        ticket = Ticket(self.batches, chunks)
        with self.lock:
            self.releases, self.stop = finisher.releases, stop
            self.tickets.append(ticket)
            for helper in self.helpers:
                self.refill(helper)
        return ticket

    def complete(self, ticket: Ticket, finisher, stop: threading.Event) -> list[Outcome]:
        """The outcomes of a submitted batch, in no particular order. Questions held by an extra
        process that died are missing (left for a retry); so are those not started when `stop`
        was set."""
        while not ticket.done():
            self._collect()
            with self.lock:
                if stop.is_set():
                    self._drop_queued()
                # This batch's last chunk, else a later batch's, as long as a batch's worth stays
                # queued for the extra processes while the worker writes this one and fetches on.
                mine = ticket if ticket.queued else next((t for t in reversed(self.tickets) if t.queued), None)
                if mine is not ticket and sum(len(t.queued) for t in self.tickets) <= HOLD_BACK:
                    mine = None
                chunk = mine.queued.pop() if mine is not None else None
                held = any(h.held for h in self.helpers)
            if chunk is not None:
                self._finish_here(mine, chunk, finisher)
            elif not ticket.done():
                if not held:  # nothing held or queued: only lost chunks were left
                    break
                self._collect(timeout=1.0)
        with self.lock:
            if ticket in self.tickets:
                self.tickets.remove(ticket)
        return ticket.outcomes

    def abandon(self, ticket: Ticket) -> None:
        """Forget a batch that will not be written: its queued chunks are not handed out."""
        with self.lock:
            ticket.queued.clear()
            if ticket in self.tickets:
                self.tickets.remove(ticket)

    @staticmethod
    def _finish_here(ticket: Ticket, chunk: list, finisher) -> None:
        ticket.outcomes += finisher.work(chunk)
        ticket.outstanding -= 1

    def refill(self, helper: Helper) -> None:
        """Give this process chunks up to IN_FLIGHT, oldest batch first (`lock` held)."""
        while helper.ready and not helper.broken and len(helper.held) < IN_FLIGHT and not self.stop.is_set() \
                and helper in self.helpers:
            ticket = next((t for t in self.tickets if t.queued), None)
            if ticket is None:
                return
            chunk = ticket.queued.popleft()
            try:
                helper.send(ticket, self.releases, chunk)
            except OSError:  # it died: the chunk goes back, the reading thread reports it gone
                ticket.queued.appendleft(chunk)
                helper.broken = True

    def _drop_queued(self) -> None:
        for ticket in self.tickets:
            ticket.outstanding -= len(ticket.queued)
            ticket.queued.clear()

    def _collect(self, timeout: float = 0) -> None:
        """Take what the processes have finished, waiting up to `timeout` for the first; drop a
        process that died."""
        try:
            message = self.inbox.get(timeout=timeout) if timeout else self.inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            helper, message = message
            if message is GONE:
                if helper in self.helpers:
                    self._lost(helper)
            elif message != "ready":
                ticket, chunk, outcomes = message
                ticket.outcomes += outcomes
                ticket.outstanding -= 1
                self.shared += len(chunk)
                self.deaths = 0
            try:
                message = self.inbox.get_nowait()
            except queue.Empty:
                return

    def _lost(self, helper: Helper) -> None:
        helper.wait(1.0)  # for its exit code
        lost = 0
        with self.lock:
            for ticket, chunk in helper.held:
                ticket.outstanding -= 1
                lost += len(chunk)
            helper.held.clear()
            self.helpers.remove(helper)
        error.error("an extra drafting process stopped (exit code %s); its %d questions are left to be "
                    "tried again", helper.process.returncode, lost)
        helper.close()
        self.deaths += 1
        if self.deaths >= 3:  # three in a row: something is wrong with them; carry on without
            error.error("extra drafting processes stopped %d times; the worker drafts alone from now on",
                        self.deaths)
            self.size = 0
