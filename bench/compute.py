"""Per-question CPU outside the database: questions/s for each pure stage the worker runs on a
question (headers + screen, reading, finding codes, look-up and checks, drafting) and for all of
them together, in-process over N synthetic questions (bench/common.py), plus the time to build the
code index that the worker builds at start.

Prints one JSON line. Needs a database seeded with the bundled code data (a throwaway SQLite file,
seeded here, or `--seeded-sqlite`); the look-ups are cached per code, as in the worker, so after the
first questions the stages below spend their time in Python. `--dump FILE` writes what each question
produced (reply subject, text, HTML, threading, analysis JSON), one JSON line per question, so two
trees can be compared for identical output.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date
from pathlib import Path

from common import (  # first: sys.path
    add_seed_option,
    emit,
    questions,
    seeded_database,
    stop_on_sigterm,
)
from sqlmodel import Session

from consultant.analysis import analyse
from consultant.checks import releases_in_force
from consultant.config import Settings
from consultant.db import make_engine
from consultant.draft import draft_reply
from consultant.extract import find_codes
from consultant.lookup import Lookup
from consultant.mimebounds import header_block
from consultant.reading import read_message
from consultant.screen import headers_of, screen

RECEIVED = date(2026, 3, 30)  # the day the questions "arrived": the default date of service
STAGES = ("screen", "read", "extract", "analyse", "draft")


def run_round(lookup: Lookup, settings: Settings, raws: list[bytes]) -> tuple[dict[str, float], list]:
    """Every stage over every question, stage by stage (the per-code cache starts empty, as in a
    worker that just started); seconds per stage and the outputs."""
    limits, spent = settings.limits, dict.fromkeys(STAGES, 0.0)
    templates, domain, name = settings.templates_dir(), settings.mail_domain(), settings.service.name
    clock = time.perf_counter
    started = clock()
    verdicts = [screen(headers_of(header_block(raw, limits.max_header_bytes)), settings) for raw in raws]
    spent["screen"] = clock() - started
    started = clock()
    readings = [read_message(raw, **limits.reading()) for raw in raws]
    spent["read"] = clock() - started
    started = clock()
    found = [find_codes(r.new_text, lookup.index, r.quoted_text) for r in readings]
    spent["extract"] = clock() - started
    started = clock()
    releases = releases_in_force(lookup.session)  # once per batch, as the worker does
    analyses = [analyse(lookup, f, r.new_text, RECEIVED, releases) for r, f in zip(readings, found)]
    spent["analyse"] = clock() - started
    started = clock()
    drafts = [draft_reply(question_id=n, templates=templates, domain=domain, service_name=name,
                          from_name=r.from_name[:200], to_addr=r.reply_to or r.from_addr or "", subject=r.subject,
                          message_id=r.message_id, references=r.references, new_text=r.new_text,
                          findings=f, facts=a.facts, warnings=a.warnings(), suggestions=a.suggestions)
              for n, (r, f, a) in enumerate(zip(readings, found, analyses), start=1)]
    spent["draft"] = clock() - started
    outputs = [dict(verdict=v.action, kind=d.kind, subject=d.subject, text=d.text, html=d.html,
                    in_reply_to=d.in_reply_to, references=d.references, analysis=a.as_json())
               for v, d, a in zip(verdicts, drafts, analyses)]
    return spent, outputs


def measure(url: str, count: int, rounds: int, dump: Path | None) -> dict:
    raws, settings = questions(count), Settings()
    engine = make_engine(url)
    best: dict[str, float] = {}
    builds = []
    try:
        with Session(engine.execution_options(readonly=True)) as session:
            for _ in range(rounds):
                started = time.perf_counter()
                lookup = Lookup(session)  # a fresh index and an empty per-code cache each round
                lookup.load_index()  # read when first needed; timed here, apart from the stages
                builds.append(time.perf_counter() - started)
                spent, outputs = run_round(lookup, settings, raws)
                best = {k: min(v, best.get(k, v)) for k, v in spent.items()}
                session.rollback()
    finally:
        engine.dispose()
    if dump is not None:
        dump.write_text("".join(json.dumps(o, sort_keys=True, default=str) + "\n" for o in outputs))
    total = sum(best.values())
    return {"questions": count, "rounds": rounds, "rate_per_s": round(count / total),
            "us_per_question": round(total / count * 1e6),
            **{f"{k}_per_s": round(count / v) for k, v in best.items()},
            "index_build_ms": round(min(builds) * 1000),
            "what": "best of the rounds; per stage and overall, in-process, no database writes"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=1000, help="Synthetic questions per round.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds; the best time of each stage counts.")
    parser.add_argument("--dump", type=Path, metavar="FILE", help="Write each question's outputs here (JSON lines).")
    add_seed_option(parser)
    args = parser.parse_args()
    stop_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="consultant-bench-") as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        seeded_database(url, args.seeded_sqlite)
        emit("compute", measure(url, args.questions, args.rounds, args.dump))


if __name__ == "__main__":
    main()
