"""Crash-test machinery: run the real worker (`python -m consultant ...`) as subprocesses, kill them
with SIGKILL at seeded random moments, restart them, until a condition on the database holds.

API (kept stable; tests/chaos/test_*.py use it):

    seed = chaos_seed()                 # CHAOS_SEED from the environment, else random; printed
    env = worker_env(tmp_path, db_url, imap_user, smtp_server, worker={"poll_every": "1s"}, ...)
        # os.environ plus CONSULTANT_<SECTION>__<KEY> for the database, the IMAP account (plain on
        # loopback), the SMTP server (plain) and any sections given as dicts; the account and the
        # server are positional (either may be None), so smtp={"sent_folder": "Sent"} is a section.
    crew = Crew(tmp_path, [env] * n, seed, command=("run",), ready="worker running")
        # n workers, each with its env; `ready` is a line the command prints once it is set up
        # (None: count from the start of the process)
    report = crew.run_until(done, deadline=60, kill_after=(0.5, 3.0), max_kills=40)
        # starts every worker; each one still running is SIGKILLed after a random delay drawn from
        # random.Random(seed) (uniform over kill_after, counted from the moment its output shows
        # `ready`: on a busy machine Python's start alone can take seconds) and restarted at once,
        # until done() is true, max_kills were made or the deadline passed; after max_kills the
        # workers run on unharmed until done() or the deadline. Then every worker is stopped
        # with SIGTERM (SIGKILL if it does not stop within 20 s). done() is called about every
        # 0.2 s, usually a query on the database: on SQLite read through
        # engine.execution_options(readonly=True) (a plain BEGIN), else each check waits for the
        # worker's write lock (BEGIN IMMEDIATE) and the kills come late.
        # after_kill=[f1, f2, ...]: fk() runs right after the k-th kill, before the restart (e.g.
        # more mail, more approvals), so each run has work whatever the machine's speed and a
        # test can count on len(after_kill) kills before done() can hold.
    report.done, report.kills, report.starts, report.seconds
    report.exits                        # runs that ended by themselves (each was restarted)
    crew.workers[i].proc.returncode     # the last run's exit status (0: it stopped on SIGTERM)
    crew.output()                       # everything every run of every worker printed
    crew.tracebacks()                   # the output of runs that printed a Traceback
    with Crew(...) as crew: ...         # stops any worker still running on the way out

Every run of a worker writes its stdout and stderr to its own file under tmp_path/chaos-logs, so a
pipe never fills up and nothing a killed worker printed is lost. Assertion messages should include
`crew.describe()` (the seed and the counts) so a failure can be replayed with CHAOS_SEED=<seed>:
the delays come out in the same order; with one worker the kills land at the same delays after
its ready line (what the worker is doing then still depends on the machine's speed).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

SEED_VARIABLE = "CHAOS_SEED"


def chaos_seed() -> int:
    """The seed for this run: CHAOS_SEED if set, else a fresh random one. Printed either way (pytest
    shows it with the output of a failed test)."""
    given = os.environ.get(SEED_VARIABLE, "").strip()
    seed = int(given) if given else random.SystemRandom().randrange(1, 2**31)
    print(f"chaos seed: {seed} (replay with {SEED_VARIABLE}={seed})", flush=True)
    return seed


def worker_env(tmp_path: Path, db_url: str, imap_user=None, smtp_server=None, /, **sections: dict) -> dict[str, str]:
    """The environment for `python -m consultant`: os.environ plus the settings as variables."""
    values: dict[str, dict] = {"database": {"url": db_url}, "paths": {"var": str(tmp_path)}}
    if imap_user is not None:
        values["imap"] = dict(host=imap_user.host, port=imap_user.port, security="plain",
                              username=imap_user.username, password=imap_user.password)
    if smtp_server is not None:
        values["smtp"] = dict(host=smtp_server.host, port=smtp_server.port, security="plain")
    for section, keys in sections.items():
        values.setdefault(section, {}).update(keys)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSULTANT_")}
    env["PYTHONUNBUFFERED"] = "1"  # what a killed worker printed is in its log, not lost in a buffer
    for section, keys in values.items():
        for key, value in keys.items():
            env[f"CONSULTANT_{section.upper()}__{key.upper()}"] = str(value)
    return env


class WorkerProcess:
    """One worker slot: start, SIGKILL, restart; each run's output goes to its own log file."""

    def __init__(self, logs: Path, name: str, env: dict[str, str], command: Sequence[str]):
        self.logs, self.name, self.env, self.command = logs, name, env, tuple(command)
        self.proc: subprocess.Popen | None = None
        self.runs: list[Path] = []
        self.started_at = 0.0
        self.ready_at: float | None = None

    def start(self) -> None:
        path = self.logs / f"{self.name}-run{len(self.runs) + 1}.log"
        self.runs.append(path)
        with open(path, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "consultant", *self.command], env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.started_at, self.ready_at = time.monotonic(), None

    def is_ready(self, ready: str | None) -> bool:
        """Whether this run has printed `ready` yet (always, when `ready` is None)."""
        if self.ready_at is None and (ready is None or ready in self.runs[-1].read_text(errors="replace")):
            self.ready_at = time.monotonic()
        return self.ready_at is not None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler, no cleanup, as when the machine loses power under the process."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait (SIGKILL after `timeout`); the exit status of the last run."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def output(self) -> str:
        return "".join(f"--- {p.name} ---\n{p.read_text(errors='replace')}" for p in self.runs if p.exists())


@dataclass
class Report:
    done: bool = False
    kills: int = 0
    starts: int = 0
    exits: int = 0  # runs that ended by themselves (a `--once` command, or a crash)
    seconds: float = 0.0


class Crew:
    """Workers to run, kill and restart; see the module docstring."""

    def __init__(self, tmp_path: Path, envs: Sequence[dict[str, str]], seed: int,
                 command: Sequence[str] = ("run",), ready: str | None = "worker running"):
        self.seed, self.rng, self.ready = seed, random.Random(seed), ready
        logs = Path(tmp_path) / "chaos-logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.workers = [WorkerProcess(logs, f"worker{i + 1}", env, command) for i, env in enumerate(envs)]
        self.report = Report()

    def __enter__(self) -> "Crew":
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def run_until(self, done: Callable[[], bool], deadline: float, kill_after: tuple[float, float] = (0.5, 3.0),
                  max_kills: int = 1000, check_every: float = 0.2,
                  after_kill: Sequence[Callable[[], None]] = ()) -> Report:
        report = self.report
        began = time.monotonic()
        end = began + deadline
        delay: dict[int, float] = {}
        for i, worker in enumerate(self.workers):
            self._start(worker)
            delay[i] = self.rng.uniform(*kill_after)
        next_check = 0.0
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_check:
                if done():
                    report.done = True
                    break
                next_check = now + check_every
            for i, worker in enumerate(self.workers):
                if not worker.alive:  # it ended by itself: count it and start it again
                    report.exits += 1
                    self._start(worker)
                    delay[i] = self.rng.uniform(*kill_after)
                elif (report.kills < max_kills and worker.is_ready(self.ready)
                      and time.monotonic() >= worker.ready_at + delay[i]):
                    worker.kill()
                    report.kills += 1
                    if report.kills <= len(after_kill):
                        after_kill[report.kills - 1]()  # new work, before the worker is back
                    self._start(worker)
                    delay[i] = self.rng.uniform(*kill_after)
            time.sleep(0.02)
        self.stop()
        report.seconds = time.monotonic() - began
        print(self.describe(), flush=True)
        return report

    def _start(self, worker: WorkerProcess) -> None:
        worker.start()
        self.report.starts += 1

    def stop(self, ready_within: float = 60.0) -> None:
        """SIGTERM each worker, once it is ready: a run started just before the work was done must
        not be stopped while it is still starting (before it handles SIGTERM, the signal kills it)."""
        until = time.monotonic() + ready_within
        for worker in self.workers:
            while worker.alive and not worker.is_ready(self.ready) and time.monotonic() < until:
                time.sleep(0.05)
            worker.stop()

    def output(self) -> str:
        return "".join(w.output() for w in self.workers)

    def tracebacks(self) -> str:
        return "".join(f"--- {p.name} ---\n{p.read_text(errors='replace')}"
                       for w in self.workers for p in w.runs
                       if p.exists() and "Traceback" in p.read_text(errors="replace"))

    def describe(self) -> str:
        r = self.report
        return (f"chaos seed {self.seed} (replay with {SEED_VARIABLE}={self.seed}): {r.kills} kills, "
                f"{r.starts} starts, {r.exits} exits, {r.seconds:.1f}s, done={r.done}")
