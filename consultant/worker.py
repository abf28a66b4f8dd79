"""The worker: a scheduler that runs the stages on a clock, woken early by IMAP IDLE."""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from .backoff import Backoff
from .config import Settings
from .fetch import IMAP_OUTAGES, FetchCounts, Fetcher, connect, disconnect
from .leader import Leadership
from .logs import OncePerOutage, error, log
from .models import utcnow
from .process import Counts, Processor
from .send import SendCounts, Sender
from .servicelog import ServiceLog, Watch, counts_of
from .sweep import SweepCounts, Sweeper

IDLE_RENEW_SECONDS = 25 * 60  # RFC 2177: re-issue IDLE before the server's 30-minute timeout


@dataclass
class PollResult:
    fetched: FetchCounts = field(default_factory=FetchCounts)
    processed: Counts = field(default_factory=Counts)
    imap_ok: bool = True
    db_ok: bool = True


class Worker:
    """Owns the stages for one process; `poll_once` is what the scheduler and `poll --once` run."""

    def __init__(self, engine: Engine, settings: Settings, fetch_mail: bool = True):
        self.engine, self.settings, self.fetch_mail = engine, settings, fetch_mail
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.fetcher = Fetcher(engine, settings, self.stop)
        self.leadership = Leadership(engine, self.fetcher.account, self.fetcher.mailbox)
        self.leading: bool | None = None  # whether the last poll led the fetch (None: not tried)
        self.processor = Processor(engine, settings, self.stop)
        # A backlog: start the extra processes while it is fetched, and draft each batch stored
        # while the next is fetched.
        self.fetcher.coming, self.fetcher.stored = self.processor.pool.warm, self.processor.step
        self.sender = Sender(engine, settings, self.stop)
        self.sweeper = Sweeper(engine, settings)
        self.imap_outage = Watch("IMAP server")
        self.db_outage = OncePerOutage("database")
        # The service log reports a database outage through the same watch: one line per outage.
        self.servicelog = ServiceLog(engine, outage=self.db_outage)
        # While IMAP (or SMTP, or the Sent folder) is known down, runs skip it with a growing wait.
        self.imap_backoff = Backoff(settings.worker.poll_every)
        self.send_backoff = Backoff(settings.worker.send_every)
        # Likewise every job while the database is down (they share it: the first to fail sets the wait).
        self.db_backoff = Backoff(settings.worker.send_every)
        self.last_poll: PollResult | None = None
        self._wake_poll: Callable[[], None] = lambda: None

    def close(self) -> None:
        self.processor.close()

    def poll_once(self) -> PollResult:
        """Fetch what is new, then process until nothing is waiting (or we are told to stop)."""
        started = utcnow()
        result = PollResult()
        if self.fetch_mail and self.imap_backoff.ready():
            self.imap_outage.reset()
            result.fetched, result.imap_ok = self._fetch()
            self.imap_backoff.settle(self.imap_outage.answered)
        elif self.fetch_mail:  # IMAP is down and its wait is not over: the last answer stands
            result.imap_ok = False
        try:
            result.processed = self.processor.run_until_done()
            self.db_outage.ok()
        except OperationalError as exc:
            result.db_ok = False
            self.db_outage.failed(exc)
        self.last_poll = result
        ok = result.imap_ok and result.db_ok
        # Without an IMAP problem, a failed poll can only be the database's (see _fetch).
        problem = self.imap_outage.problem or (None if ok else "database unreachable")
        self.servicelog.record("poll", started, ok=ok, counts=counts_of(result.fetched, result.processed),
                               server_ok=self.imap_outage.answered if self.fetch_mail else None, error=problem)
        return result

    def _fetch(self) -> tuple[FetchCounts, bool]:
        """Fetch if this worker leads the mailbox now (PostgreSQL: an advisory lock, see leader.py);
        a worker that does not lead skips the fetch and goes on to process stored work."""
        try:
            with self.leadership.lead() as self.leading:
                return self._fetch_as_leader() if self.leading else (FetchCounts(), True)
        except OperationalError as exc:  # the lock's connection: the database is unreachable
            self.db_outage.failed(exc)
            return FetchCounts(), False

    def _fetch_as_leader(self) -> tuple[FetchCounts, bool]:
        counts = FetchCounts()  # what was committed before an outage cut the run short still counts
        try:
            client = connect(self.settings.imap)
        except IMAP_OUTAGES as exc:
            self.imap_outage.failed(exc)
            return counts, False
        try:
            self.fetcher.run_once(client, counts)
            self.imap_outage.ok()
            return counts, True
        except IMAP_OUTAGES as exc:
            self.imap_outage.failed(exc)
            return counts, False
        except OperationalError as exc:
            self.db_outage.failed(exc)
            return counts, False
        finally:
            disconnect(client)  # the connection may already be gone

    def poll_job(self) -> None:
        """Loop while IDLE keeps signalling, so a message that lands mid-poll is not left waiting."""
        while not self.stop.is_set():
            self.wake.clear()
            started = utcnow()
            if not self.db_backoff.ready():
                return  # the database is down and its wait is not over: no connection, no row
            try:
                self.poll_once()
            except Exception as exc:
                error.exception("poll failed")
                self.servicelog.record("poll", started, ok=False, error=f"internal error: {type(exc).__name__}")
            self.db_backoff.settle(not self.db_outage.down)
            if not self.wake.is_set():
                return

    def send_job(self) -> SendCounts:
        """Send until nothing is due (a full batch means more may be waiting); one service-log row."""
        started, total, problem = utcnow(), SendCounts(), None
        db_ready, servers_ready = self.db_backoff.ready(), self.send_backoff.ready()  # (both asked: see Backoff)
        if not (db_ready and servers_ready):
            return total  # a server it needs is down and its wait is not over: no connection, no row
        for watch in (self.sender.smtp_outage, self.sender.imap_outage):
            watch.reset()
        try:
            total = self.sender.run_until_done()
            self.db_outage.ok()
        except OperationalError as exc:
            self.db_outage.failed(exc)
            problem = "database unreachable"
        except Exception as exc:
            error.exception("send failed")
            problem = f"internal error: {type(exc).__name__}"
        smtp, sent_folder = self.sender.smtp_outage, self.sender.imap_outage
        answers = (smtp.answered, sent_folder.answered)
        self.send_backoff.settle(False if False in answers else (True if True in answers else None))
        self.db_backoff.settle(not self.db_outage.down)
        problem = problem or sent_folder.problem or smtp.problem
        self.servicelog.record("send", started, ok=problem is None, server_ok=smtp.answered,
                               counts=counts_of(total), error=problem)
        return total

    def sweep_job(self) -> SweepCounts | None:
        started, counts, problem = utcnow(), None, None
        if not self.db_backoff.ready():
            return None  # the database is down and its wait is not over
        try:
            counts = self.sweeper.run_once()
            self.db_outage.ok()
        except OperationalError as exc:
            self.db_outage.failed(exc)
            problem = "database unreachable"
        except Exception as exc:
            error.exception("sweep failed")
            problem = f"internal error: {type(exc).__name__}"
        self.db_backoff.settle(not self.db_outage.down)
        self.servicelog.record("sweep", started, ok=problem is None,
                               counts=counts_of(counts) if counts else None, error=problem)
        return counts

    def idle_loop(self) -> None:
        """Hold an IDLE connection; on any change, wake the poll. Reconnect with backoff."""
        delay = 1.0
        while not self.stop.is_set():
            try:
                client = connect(self.settings.imap)
            except IMAP_OUTAGES:
                self.stop.wait(delay)
                delay = min(delay * 2, 60.0)
                continue
            try:
                if not client.has_capability("IDLE"):
                    log.info("IMAP server does not offer IDLE; polling every %ss", self.settings.worker.poll_every)
                    return
                client.select_folder(self.settings.imap.mailbox, readonly=True)
                delay = 1.0
                self.imap_backoff.settle(True)  # IMAP is back: a poll IDLE wakes need not wait out the backoff
                self._idle(client)
            except IMAP_OUTAGES:
                self.stop.wait(delay)
                delay = min(delay * 2, 60.0)
            finally:
                try:
                    client.shutdown()
                except Exception:
                    pass

    def _idle(self, client) -> None:
        while not self.stop.is_set():
            client.idle()
            waited = 0.0
            while not self.stop.is_set() and waited < IDLE_RENEW_SECONDS:
                responses = client.idle_check(timeout=1)
                waited += 1
                if any(r[1] in (b"EXISTS", b"RECENT") for r in responses if len(r) > 1):
                    self.wake.set()
                    self._wake_poll()
            client.idle_done()

    def run(self, send: bool = True, ready: Callable[[], None] = lambda: None) -> None:
        """Run poll, send and sweep on their clocks until SIGTERM or SIGINT; the current item is
        finished before the process exits. `ready` is called once the signals are ours and the
        scheduler runs (from then on SIGTERM stops the worker cleanly)."""
        from apscheduler.schedulers.background import BackgroundScheduler  # only `run` needs it

        every = self.settings.worker
        scheduler = BackgroundScheduler(job_defaults={"max_instances": 1, "coalesce": True})
        poll = scheduler.add_job(self.poll_job, "interval", seconds=every.poll_every, id="poll",
                                 next_run_time=_now())
        if send:
            scheduler.add_job(self.send_job, "interval", seconds=every.send_every, id="send",
                              next_run_time=_now())
            scheduler.add_job(self.sweep_job, "interval", seconds=every.sweep_every, id="sweep",
                              next_run_time=_now())

        def wake_poll():
            try:
                poll.modify(next_run_time=_now())
            except Exception:  # the scheduler is shutting down
                pass
        self._wake_poll = wake_poll

        def on_signal(signum, _frame):
            log.info("signal %s: finishing the current item, then stopping", signum)
            self.stop.set()
        in_main = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
        scheduler.start()
        idle = None
        if self.fetch_mail and self.settings.imap.idle:
            idle = threading.Thread(target=self.idle_loop, name="imap-idle", daemon=True)
            idle.start()
        ready()
        try:
            while not self.stop.wait(0.5):
                pass
        finally:
            scheduler.shutdown(wait=True)
            if idle:
                idle.join(timeout=5)
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.close()


def _now():
    from datetime import datetime, timezone
    return datetime.now(timezone.utc)
