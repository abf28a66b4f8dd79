"""Extra processes that read, look up and draft the questions of big batches beside the worker.

Screening stays in the worker (its rate limits count the questions in order), and so does every
database write; what comes after the screen (consultant.finish) is pure work on one question, so a
backlog spreads it over the machine's cores. The worker sends chunks of screened questions down a
pipe and works on chunks itself meanwhile; whoever is free takes the next chunk. An extra process
is started (spawned, not forked: the worker has threads) on the first batch big enough to share,
and is not waited for: until it says it is ready, the worker does all the work itself.

If an extra process dies, the questions it held are not written: their claim runs out and they are
tried again one at a time in the worker, where a message that kills it is counted as for any crash
(limits.max_attempts). Small batches (a question that just arrived) never leave the worker.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from multiprocessing.connection import wait

from .batch import Item, Outcome
from .config import Settings
from .logs import error
from .screen import Verdict

CHUNK = 20  # questions sent at a time
MIN_SHARED = 2 * CHUNK  # fewer screened questions than this stay in the worker
IN_FLIGHT = 2  # chunks a process holds at once: one to work on, one waiting
MAX_PROCESSES = 4


def process_count(setting: int) -> int:
    """worker.processes: -1 means one fewer than the CPU cores (at most MAX_PROCESSES)."""
    if setting >= 0:
        return setting
    return max(0, min(MAX_PROCESSES, (os.cpu_count() or 1) - 1))


def serve(settings: Settings, conn) -> None:
    """An extra process: finish the chunks the worker sends until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the worker, which closes the pipe
    try:
        _serve(settings, conn)
    except (EOFError, OSError):  # the worker is gone (killed, stopped): so are we
        pass
    except Exception as exc:  # the worker goes on without us and says so; no traceback for a user
        error.error("an extra drafting process failed: %s: %s", type(exc).__name__, str(exc)[:300])
        raise SystemExit(1)


def _serve(settings: Settings, conn) -> None:
    from .db import make_engine
    from .finish import Finisher
    from .logs import setup

    setup(settings.log.level, settings.log.file)
    engine = make_engine(settings.database.url)
    finisher, batch = Finisher(engine, settings), None
    conn.send("ready")
    while True:
        message = conn.recv()
        if message is None:
            break
        number, releases, chunk = message
        if number != batch:  # a new batch: new codes may have been loaded
            finisher.refresh()
            batch = number
        finisher.releases = releases
        outcomes = []
        for item, verdict in chunk:
            outcome = finisher.finish(item, verdict)
            outcome.item.raw = None
            outcomes.append(outcome)
        conn.send(outcomes)
    finisher.close()
    engine.dispose()


class Helper:
    """One extra process and the chunks it holds."""

    def __init__(self, settings: Settings):
        context = multiprocessing.get_context("spawn")
        self.conn, theirs = context.Pipe()
        self.process = context.Process(target=serve, args=(settings, theirs), name="consultant-drafting",
                                       daemon=True)
        self.process.start()
        theirs.close()
        self.ready, self.held = False, deque()

    def send(self, number: int, releases, chunk: list) -> None:
        self.conn.send((number, releases, chunk))
        self.held.append(chunk)

    def close(self) -> None:
        if self.ready:  # it ends when told; one still starting is not waited for
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.process.join(timeout=2)
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class Pool:
    """The worker's extra processes (worker.processes), started when first needed."""

    def __init__(self, settings: Settings):
        self.settings, self.size = settings, process_count(settings.worker.processes)
        self.helpers: list[Helper] = []
        self.batches = self.deaths = 0
        self.shared = 0  # questions finished by the extra processes

    def wait_ready(self, timeout: float) -> bool:
        """Wait until every extra process started is ready (tests, benchmarks); True if so."""
        deadline = time.monotonic() + timeout
        while not all(h.ready for h in self.helpers) and time.monotonic() < deadline:
            for helper in list(self.helpers):
                self._collect(helper, [])
            time.sleep(0.05)
        return bool(self.helpers) and all(h.ready for h in self.helpers)

    def close(self) -> None:
        for helper in self.helpers:
            helper.close()
        self.helpers = []

    def warm(self, waiting: int) -> None:
        """Start the extra processes now if `waiting` questions are about to come (a backlog being
        fetched), so they are ready when the first batch is screened."""
        if waiting >= MIN_SHARED:
            while len(self.helpers) < self.size:
                self.helpers.append(Helper(self.settings))

    def finish_all(self, finisher, screened: list[tuple[Item, Verdict]], stop: threading.Event) -> list[Outcome]:
        """The outcomes of these screened questions, in no particular order. Questions held by an
        extra process that died are missing (left for a retry); so are those not started when
        `stop` was set."""
        if self.size == 0 or len(screened) < MIN_SHARED:
            return [finisher.finish(item, verdict) for item, verdict in screened if not stop.is_set()]
        self.warm(len(screened))
        self.batches += 1
        chunks = deque(screened[first:first + CHUNK] for first in range(0, len(screened), CHUNK))
        outcomes: list[Outcome] = []
        while True:
            for helper in list(self.helpers):
                self._collect(helper, outcomes)
            for helper in self.helpers:  # keep every ready process busy
                while helper.ready and len(helper.held) < IN_FLIGHT and chunks and not stop.is_set():
                    helper.send(self.batches, finisher.releases, chunks.pop())  # from the back
            if chunks and not stop.is_set():
                outcomes += [finisher.finish(item, verdict) for item, verdict in chunks.popleft()]
                continue
            busy = [h.conn for h in self.helpers if h.held]
            if not busy:
                return outcomes
            wait(busy, timeout=1.0)

    def _collect(self, helper: Helper, outcomes: list[Outcome]) -> None:
        """Take what this process has finished (and its ready word); drop it if it died."""
        try:
            while helper.conn.poll():
                message = helper.conn.recv()
                if message == "ready":
                    helper.ready = True
                else:
                    outcomes += message
                    self.shared += len(helper.held.popleft())
                    self.deaths = 0
            if helper.process.is_alive() or helper.conn.poll():
                return
        except (EOFError, OSError):
            pass
        lost = sum(len(chunk) for chunk in helper.held)
        error.error("an extra drafting process stopped (exit code %s); its %d questions are left to be "
                    "tried again", helper.process.exitcode, lost)
        helper.held.clear()
        helper.close()
        self.helpers.remove(helper)
        self.deaths += 1
        if self.deaths >= 3:  # three in a row: something is wrong with them; carry on without
            error.error("extra drafting processes stopped %d times; the worker drafts alone from now on",
                        self.deaths)
            self.size = 0
