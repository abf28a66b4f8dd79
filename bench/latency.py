"""Pickup latency: arrival in the inbox -> drafted, with a running `consultant run` woken by IDLE.

Prints one JSON line. A throwaway Dovecot and a seeded database (SQLite, or PostgreSQL with --db);
the real worker (`consultant run`, default settings: IDLE on, a poll every 60 s) runs as a child
process. One warm-up question is drafted first, then the questions are appended one at a time with
a random gap. Arrival is the moment each APPEND is sent; drafted is the time of the question's
audit event to 'drafted' in the database (same clock, same machine). Dovecot itself sends its IDLE
notification about half a second after a delivery.

  bench/latency.py                 50 questions on SQLite
  bench/latency.py --db postgres
"""
from __future__ import annotations

import argparse
import random
import signal
import subprocess
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

from common import (
    ROOT,
    add_seed_option,
    consultant,
    emit,
    imap_login,
    question,
    seeded_database,
    spread_ms,
    status_counts,
    stop_on_sigterm,
    worker_config,
)

TARGET = "p95 <= 2000 ms with IDLE"


def drafted_times(db_url: str) -> dict[str, datetime]:
    """Message-ID -> the time its question became drafted."""
    from sqlalchemy import select
    from sqlmodel import Session

    from consultant.db import make_engine
    from consultant.models import Event, Question, as_utc

    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            rows = session.execute(select(Question.message_id, Event.at).join(Event, Event.question_id == Question.id)
                                   .where(Event.to_status == "drafted")).all()
    finally:
        engine.dispose()
    return {message_id: as_utc(at) for message_id, at in rows}


def wait_drafted(db_url: str, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status_counts(db_url).get("drafted", 0) >= count:
            return True
        time.sleep(0.2)
    return False


def message_id(raw: bytes) -> str:
    from consultant.fetch import dedupe_key

    return dedupe_key(raw)[1]


def measure(db_url: str, user, folder: Path, count: int, gap: tuple[float, float]) -> dict:
    rng = random.Random(3)
    _path, env = worker_config(folder, db_url, user)
    log = open(folder / "worker.log", "ab")
    worker = subprocess.Popen(consultant("run"), env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=ROOT)
    arrived: dict[str, datetime] = {}
    client = imap_login(user)
    try:
        client.append("INBOX", question(0, rng))  # warm-up: the worker is up, IDLE is listening
        if not wait_drafted(db_url, 1, 120):
            raise RuntimeError(f"the worker drafted nothing within 120 s: see {folder / 'worker.log'}")
        time.sleep(1.0)  # let the poll that drafted it finish and IDLE resume
        for n in range(1, count + 1):
            time.sleep(rng.uniform(*gap))
            raw = question(n, rng)
            arrived[message_id(raw)] = datetime.now(timezone.utc)
            client.append("INBOX", raw)
        finished = wait_drafted(db_url, count + 1, 120)
    finally:
        client.logout()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
    done = drafted_times(db_url)
    waits = [(done[mid] - at).total_seconds() * 1000 for mid, at in arrived.items() if mid in done]
    return {"n": count, "drafted": len(waits), "all_drafted": finished and len(waits) == count, **spread_ms(waits)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50, help="Questions appended one at a time (default 50).")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--gap", type=float, nargs=2, default=(0.2, 1.0), metavar=("MIN", "MAX"),
                        help="Random gap between appends, in seconds (default 0.2 1.0).")
    add_seed_option(parser)
    args = parser.parse_args()
    stop_on_sigterm()
    from servers.dovecot import Dovecot
    from servers.postgres import PostgresCluster

    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        dovecot = stack.enter_context(Dovecot())
        if args.db == "sqlite":
            url = f"sqlite:///{tmp}/bench.db"
        else:
            url = stack.enter_context(PostgresCluster()).create_database("bench_latency")
        seeded_database(url, args.seeded_sqlite)
        figures = measure(url, dovecot.add_user(), Path(tmp), args.messages, tuple(args.gap))
    emit("latency", {**figures, "db": args.db, "idle": True, "gap_s": list(args.gap), "target": TARGET})


if __name__ == "__main__":
    main()
