"""Desk page times with 100,000 questions: queue and question pages, p50/p95 server time, SQLite and PostgreSQL.

Prints one JSON line. Seeds each database with bulk INSERTs (questions, their raw mail, replies and
events), then sends requests through the real app in-process (FastAPI's test client) and reads the
app's own time from its Server-Timing header: session check, queries, templates; no network.
PostgreSQL is a throwaway cluster (tests/servers/postgres.py). p95_ms is the worst p95 of the
queue and question pages on the first database; target: <= 50 ms with 100,000 questions.

  bench/web.py                          100,000 questions, SQLite and PostgreSQL
  bench/web.py --questions 20000 --db sqlite
"""
from __future__ import annotations

import argparse
import os
import random
import re
import tempfile
import time
from datetime import timedelta

from common import (  # first: it puts the repository and tests/ on sys.path
    emit,
    spread_ms,
    stop_on_sigterm,
)
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlmodel import Session

from consultant import accounts
from consultant.codeload import load_starter
from consultant.config import Settings
from consultant.db import make_engine, upgrade
from consultant.models import Event, Question, QuestionCode, RawMessage, Reply, utcnow
from consultant.web import create_app

BATCH = 5000
REQUESTS = 200
PASSWORD = "bench password 123"
CODES = [("62303", "CPT"), ("72128", "CPT"), ("99213", "CPT"), ("99214", "CPT"), ("J1100", "HCPCS"),
         ("96372", "CPT"), ("M54.16", "ICD-10-CM"), ("I10", "ICD-10-CM"), ("20610", "CPT")]
# What the queue holds: mostly answered mail, a backlog waiting for review, a few problems.
STATUSES = [("sent", 0.70), ("drafted", 0.18), ("in_review", 0.02), ("rejected", 0.05), ("approved", 0.01),
            ("quarantined", 0.03), ("failed", 0.01)]


def status_for(rng: random.Random) -> str:
    x, total = rng.random(), 0.0
    for status, share in STATUSES:
        total += share
        if x < total:
            return status
    return "sent"


def seed(engine, n: int) -> float:
    """n questions with raw mail, a reply each (when drafted or later) and 3-5 events, in batches."""
    rng = random.Random(5)
    started = time.perf_counter()
    now = utcnow()
    with Session(engine) as session:
        load_starter(session)
        accounts.add(session, "alice", "reviewer", PASSWORD)
        session.commit()
    for first in range(1, n + 1, BATCH):
        ids = range(first, min(first + BATCH, n + 1))
        questions, raws, replies, events, found = [], [], [], [], []
        for i in ids:
            status = status_for(rng)
            picked = rng.sample(CODES, rng.randint(1, 4))
            text = (f"Hi,\n\nCan I bill {' with '.join(c for c, _ in picked)}? Radiology did both in one session "
                    f"and the clearinghouse flagged the pair for claim {rng.randint(10**8, 10**9)}.\n\nThanks,\nCoder {i}\n")
            codes = [dict(code=c, system=s, quoted=False, modifiers=[], units=1, known=True, from_range=None,
                          spans=[[text.index(c), text.index(c) + len(c)]]) for c, s in picked]
            found += [dict(question_id=i, system=s, code=c, quoted=False) for c, s in picked]
            received = now - timedelta(seconds=(n - i) * 30)
            claimed = status == "in_review"
            questions.append(dict(
                id=i, status=status, dedupe_key=f"<q{i}@bench.test>", message_id=f"<q{i}@bench.test>", attempts=0,
                size=len(text) + 400, body_downloaded=True, received_at=received, updated_at=received,
                from_addr=f"coder{i % 5000}@clinic{i % 97}.test", from_name=f"Coder {i % 5000}",
                subject=f"Question {i} about {picked[0][0]}", body_source="text/plain", new_text=text,
                quoted_text="> earlier question\n> second line\n", attachments=[], defects=[], codes=codes,
                modifiers=[], analysis={"warnings": [], "suggestions": [], "missing": [], "sources": []},
                stage="parse" if status == "quarantined" else None,
                reason="unreadable" if status in ("quarantined", "failed", "rejected") else None,
                claimed_by="bob" if claimed else None, claimed_until=now + timedelta(minutes=30) if claimed else None))
            raws.append(dict(question_id=i, raw=(f"From: Coder {i} <coder{i}@clinic.test>\r\nTo: ask@bench.test\r\n"
                                                 f"Subject: Question {i}\r\nMessage-ID: <q{i}@bench.test>\r\n\r\n{text}").encode()))
            if status != "quarantined":
                replies.append(dict(question_id=i, purpose="answer", kind="answer", to_addr=f"coder{i}@clinic.test",
                                    subject=f"Re: Question {i}", text="Hello,\n\n" + "Answer line.\n" * 40,
                                    html="<p>Answer</p>" * 40, message_id=f"<r{i}@bench.test>", created_at=received,
                                    to_send=False, send_attempts=0, sent_at=received if status == "sent" else None))
            events += [dict(question_id=i, at=received, actor="fetch", action="transition", to_status=s)
                       for s in ("received", "parsed", "drafted")]
            if status in ("sent", "rejected", "approved"):
                events.append(dict(question_id=i, at=received, actor="alice", action="approve", to_status=status))
        with Session(engine) as session:
            for table, rows in ((Question, questions), (QuestionCode, found), (RawMessage, raws), (Reply, replies),
                                (Event, events)):
                if rows:
                    session.execute(insert(table), rows)
            session.commit()
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
    else:
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


def timed(client: TestClient, urls: list[str]) -> dict:
    for url in urls[:5]:  # warm caches (the code lookup index is built on first use)
        client.get(url)
    times = []
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        # The app's own time (Server-Timing), without the test client's thread hops.
        times.append(float(response.headers["server-timing"].split("dur=")[1]))
    return spread_ms(times)


def measure(url: str, n: int) -> dict:
    engine = make_engine(url)
    upgrade(engine)
    seconds = seed(engine, n)
    settings = Settings.model_validate({"database": {"url": url}, "web": {"secret_key": "b" * 40}})
    client = TestClient(create_app(settings, engine), follow_redirects=False)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)[1]
    assert client.post("/login", data={"name": "alice", "password": PASSWORD, "csrf": token}).status_code == 303
    rng = random.Random(7)
    with Session(engine) as session:
        waiting = list(session.execute(select(Question.id).where(Question.status.in_(["drafted", "in_review"]))
                                       .order_by(Question.id)).scalars())
    # Pages at every depth of the queue (keyset: page 1,000 must cost what page 1 costs).
    queue = ["/queue"] + [f"/queue?after={rng.choice(waiting)}" for _ in range(REQUESTS - 1)]
    by_code = [f"/queue?code={rng.choice(CODES)[0]}&after={rng.choice(waiting)}" for _ in range(REQUESTS // 2)]
    questions = [f"/questions/{rng.choice(waiting)}" for _ in range(REQUESTS)]
    result = dict(seed_s=round(seconds, 1), waiting=len(waiting), queue=timed(client, queue),
                  queue_by_code=timed(client, by_code), question=timed(client, questions))
    engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=int(os.environ.get("BENCH_QUESTIONS", "100000")),
                        help="Questions in the database (default 100000, or BENCH_QUESTIONS).")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    stop_on_sigterm()
    from servers.postgres import PostgresCluster

    n, figures = args.questions, {}
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="bench-web-") as folder:
            figures["sqlite"] = measure(f"sqlite:///{folder}/bench.db", n)
    if args.db in ("postgres", "both"):
        with PostgresCluster() as cluster:
            figures["postgres"] = measure(cluster.create_database("bench_web"), n)
    for result in figures.values():
        result["p95_ms"] = max(result["queue"]["p95_ms"], result["question"]["p95_ms"])
    first = next(iter(figures.values()))
    headline = dict(questions=n, requests=REQUESTS, p95_ms=first["p95_ms"], target="p95 <= 50 ms at 100,000")
    if len(figures) == 2:
        sqlite, postgres = figures["sqlite"], figures["postgres"]
        headline.update(
            ratio_queue_p95_postgres_to_sqlite=round(postgres["queue"]["p95_ms"] / sqlite["queue"]["p95_ms"], 2),
            ratio_question_p95_postgres_to_sqlite=round(postgres["question"]["p95_ms"] / sqlite["question"]["p95_ms"], 2))
    emit("web", {**headline, **figures})

if __name__ == "__main__":
    main()
