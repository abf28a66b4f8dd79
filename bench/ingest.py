"""Backlog: N questions waiting in the inbox, drafted by the real worker; against the floor.

Prints one JSON line. A throwaway Dovecot (tests/servers/dovecot.py) gets N synthetic questions by
MULTIAPPEND; the database gets the schema and the bundled code data (neither is timed). Then:

- the floor: imapclient fetches all N with BODY.PEEK[] in batches of 500 and parses each with the
  email package's compat32 policy: the least any worker must do to read the backlog;
- the pipeline: the real `consultant poll --once` as a child process, with a config file and the
  password in the environment as an operator would set them, run until all N are drafted (one run
  does it all; more runs only if some were left). It fetches, stores, screens, parses, extracts,
  looks up, checks, drafts and commits exactly as the worker does. Its peak RSS comes from wait4().

Settings are the defaults of config.example.toml except the server and the database. The backlog
is the mail of an outage: the questions arrived (INTERNALDATE) one every 9 seconds up to now, 400 an
hour, under the global rate limit's 500 an hour, which counts by arrival; senders send five
questions each, under the per-sender limit. Every rule runs for every question. rate_per_s = N / pipeline seconds (process start included; startup_s says how
much of it that is); ratio = pipeline seconds / floor seconds.

  bench/ingest.py                       N = 5,000 on SQLite
  bench/ingest.py --db both             and on PostgreSQL
  bench/ingest.py --scaling             N = 1,000 and 20,000: ratio of the rates, peak RSS at 20,000
  bench/ingest.py --codes wide          diagnoses from 3,000 ICD-10-CM codes, not 4: most of the
                                        backlog's codes are then looked up for the first time
"""
from __future__ import annotations

import argparse
import email
import email.policy
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common import (
    BIN,
    DIAGNOSES,
    add_seed_option,
    consultant,
    emit,
    fill_mailbox,
    imap_login,
    questions,
    run_measured,
    seeded_database,
    status_counts,
    stop_on_sigterm,
    wide_diagnoses,
    worker_config,
)

FLOOR_BATCH = 500
OVERRIDES: dict = {}  # settings changed from the defaults (--processes)
MIX = {"codes": "few"}  # --codes
ARRIVAL_GAP = timedelta(seconds=9)  # 400 an hour: a backlog under the global rate limit
TARGETS = {"rate_per_s": ">= 1000 at N = 5000 (SQLite)", "ratio": "<= 3.0 at N = 5000",
           "scaling": "rate at 20000 within 20% of the rate at 1000", "peak_rss_mb": "< 200 at N = 20000"}


def floor(user) -> tuple[float, int]:
    """Seconds to fetch every message with BODY.PEEK[] and parse each (compat32); messages read."""
    started = time.perf_counter()
    client = imap_login(user)
    read = 0
    try:
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        for first in range(0, len(uids), FLOOR_BATCH):
            for data in client.fetch(uids[first:first + FLOOR_BATCH], ["BODY.PEEK[]"]).values():
                message = email.message_from_bytes(data[b"BODY[]"], policy=email.policy.compat32)
                read += message["Message-ID"] is not None
    finally:
        client.logout()
    return time.perf_counter() - started, read


def pipeline(folder: Path, db_url: str, user, n: int, profile: Path | None = None) -> dict:
    """`consultant poll --once` until all n are drafted: wall time, peak RSS, what became of them."""
    _path, env = worker_config(folder, db_url, user, **OVERRIDES)
    log = folder / "worker.log"
    # What a run costs before it touches the mailbox: interpreter, imports, schema check, code index.
    startup_s, startup_rss, code, _cpu = run_measured(consultant("poll", "--once", "--no-fetch"), env, log)
    if code != 0:
        raise RuntimeError(f"poll --once --no-fetch exited with {code}: see {log}")
    seconds, peak, runs, cpu = 0.0, 0.0, 0, 0.0
    counts: dict[str, int] = {}
    command = consultant("poll", "--once")
    if profile is not None:  # py-spy starts the worker and samples it, waiting included (--idle)
        command = [str(BIN / "py-spy"), "record", "--idle", "--rate", "200", "--format", "raw",
                   "--output", str(profile), "--", *command]
    while counts.get("drafted", 0) < n and runs < 5:
        took, rss, code, used = run_measured(command, env, log)
        runs += 1
        seconds, peak, cpu = seconds + took, max(peak, rss), cpu + used
        if code != 0:
            raise RuntimeError(f"poll --once exited with {code}: see {log}")
        counts = status_counts(db_url)
    return {"seconds": seconds, "cpu_s": round(cpu, 2), "runs": runs, "peak_rss_mb": round(peak, 1), "startup_s": round(startup_s, 2),
            "startup_rss_mb": round(startup_rss, 1), "statuses": counts}


def measure(folder: Path, db: str, db_url: str, user, n: int, floor_s: float, profile: Path | None) -> dict:
    run = pipeline(folder, db_url, user, n, profile)
    drafted = run["statuses"].get("drafted", 0)
    return {"db": db, "n": n, "settings": OVERRIDES or "defaults", "codes": MIX["codes"], "rate_per_s": round(drafted / run["seconds"], 1),
            "ratio": round(run["seconds"] / floor_s, 2), "peak_rss_mb": None if profile else run["peak_rss_mb"],
            "floor_rate_per_s": round(n / floor_s, 1), "pipeline_s": round(run["seconds"], 2),
            "floor_s": round(floor_s, 3), "pipeline_cpu_s": run["cpu_s"], "startup_s": run["startup_s"],
            "startup_rss_mb": run["startup_rss_mb"], "poll_runs": run["runs"],
            "all_drafted": drafted == n, "statuses": run["statuses"]}


class Databases:
    """Fresh seeded databases on demand: SQLite copies one seeded file; PostgreSQL copies a template."""

    def __init__(self, folder: Path, stack, sqlite_seed: Path | None = None):
        self.folder, self.stack, self.count = folder, stack, 0
        self._sqlite_seed = sqlite_seed
        self._cluster = None

    def new(self, db: str) -> str:
        self.count += 1
        if db == "sqlite":
            if self._sqlite_seed is None:
                self._sqlite_seed = self.folder / "seed.db"
                seeded_database(f"sqlite:///{self._sqlite_seed}")
            path = self.folder / f"bench{self.count}.db"
            shutil.copyfile(self._sqlite_seed, path)
            return f"sqlite:///{path}"
        if self._cluster is None:
            from servers.postgres import PostgresCluster

            self._cluster = self.stack.enter_context(PostgresCluster())
            seeded_database(self._cluster.create_database("bench_seed"))
        return self._cluster.create_database(f"bench_{self.count}", template="bench_seed")


def after_start(run: dict) -> float:
    """Questions a second once the process has started: N / (pipeline seconds - startup seconds)."""
    return run["n"] / max(0.001, run["pipeline_s"] - run["startup_s"])


def arrivals(n: int) -> list[datetime]:
    """When the backlog's mail came in: one every ARRIVAL_GAP, the last just now."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return [now - ARRIVAL_GAP * (n - 1 - i) for i in range(n)]


def run(sizes: list[int], dbs: list[str], profile: Path | None = None, sqlite_seed: Path | None = None) -> dict:
    from contextlib import ExitStack

    from servers.dovecot import Dovecot

    results: dict[int, dict] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        dovecot = stack.enter_context(Dovecot())
        databases = Databases(Path(tmp), stack, sqlite_seed)
        for n in sizes:
            user = dovecot.add_user()
            raws = questions(n, diagnoses=wide_diagnoses() if MIX["codes"] == "wide" else DIAGNOSES)
            fill_s = fill_mailbox(user, raws, dates=arrivals(n))
            floor_s, read = floor(user)
            if read != n:
                raise RuntimeError(f"the floor read {read} of {n} messages")
            results[n] = {"mailbox_fill_s": round(fill_s, 1),
                          "bytes_per_message": round(sum(map(len, raws)) / n)}
            for db in dbs:
                folder = Path(tmp) / f"{db}-{n}"
                folder.mkdir()
                results[n][db] = measure(folder, db, databases.new(db), user, n, floor_s,
                                         profile.with_suffix(f".{db}-{n}.txt") if profile else None)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="Questions in the backlog (default 5000).")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--scaling", action="store_true",
                        help="Run N = 1000 and N = 20000 (or --small/--large) and report the ratio of the rates.")
    parser.add_argument("--small", type=int, default=1000, help="Small N of --scaling.")
    parser.add_argument("--large", type=int, default=20000, help="Large N of --scaling.")
    parser.add_argument("--processes", type=int, metavar="N",
                        help="worker.processes for the pipeline (default: the setting's default, -1).")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="Run the worker under py-spy and write its collapsed stacks to FILE.<db>-<n>.txt "
                             "(for bench/stages.py; the peak RSS is then not measured).")
    parser.add_argument("--codes", choices=["few", "wide"], default="few",
                        help="Diagnoses from 4 codes (few) or from 3,000 (wide), with 10 procedures either way.")
    add_seed_option(parser)
    args = parser.parse_args()
    MIX["codes"] = args.codes
    stop_on_sigterm()
    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    sizes = [args.small, args.large] if args.scaling else [args.messages]
    if args.processes is not None:
        OVERRIDES["worker"] = {"processes": args.processes}
    results = run(sizes, dbs, args.profile.resolve() if args.profile else None, args.seeded_sqlite)
    big = results[sizes[-1]]
    headline = dict(big[dbs[0]])
    figures = {**headline, "mailbox_fill_s": big["mailbox_fill_s"], "bytes_per_message": big["bytes_per_message"]}
    for db in dbs[1:]:
        figures[db] = big[db]
    if args.scaling:
        small = results[sizes[0]]
        figures["scaling"] = {db: {"n_small": sizes[0], "n_large": sizes[-1],
                                   "rate_small_per_s": small[db]["rate_per_s"],
                                   "rate_large_per_s": big[db]["rate_per_s"],
                                   "rate_ratio_large_to_small": round(big[db]["rate_per_s"] / small[db]["rate_per_s"], 3),
                                   "peak_rss_mb_small": small[db]["peak_rss_mb"],
                                   "peak_rss_mb_large": big[db]["peak_rss_mb"],
                                   # The same without the fixed cost of a start (startup_s): the
                                   # cost per question, which is what grows or not with N.
                                   "after_start_ratio_large_to_small": round(
                                       after_start(big[db]) / after_start(small[db]), 3)} for db in dbs}
    figures["targets"] = TARGETS
    emit("ingest", figures)


if __name__ == "__main__":
    main()
