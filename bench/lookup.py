"""Code knowledge speed: importer rows/s for each licensed layout, and questions/s for looking up
ten codes (facts + related codes) and checking every pair, their units and modifiers.

Prints one JSON line. The files are synthetic, generated here in the real layouts at the size of a
real quarter's release (our own filler words, not CMS or AMA text). Runs on SQLite, and on a
throwaway PostgreSQL too when its binaries are installed (`make test-deps`).
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import date
from pathlib import Path

from common import (  # first: it puts the repository and tests/ on sys.path
    add_seed_option,
    emit,
    seeded_database,
    stop_on_sigterm,
)
from sqlmodel import Session

from consultant import checks
from consultant.db import make_engine
from consultant.extract import find_codes
from consultant.importers import (
    import_cpt,
    import_hcpcs,
    import_mue,
    import_pfs_rvu,
    import_ptp,
)
from consultant.lookup import Lookup

QUESTION = ("Can we bill 62303 with 72128 and 62304-59, plus 99213-25 and 20610-50 the same day? "
            "J1100 x12 and 96372, 64483 and 77003. Dx M54.16, E11.9. DOS 03/14/2025")
DOS = date(2025, 3, 14)
PROCEDURES = ["62303", "72128", "62304", "99213", "20610", "J1100", "96372", "64483", "77003", "62302"]


def synthetic_files(folder: Path, ptp_rows: int, rng: random.Random) -> dict[str, Path]:
    """Files in the CMS/AMA layouts, filled with generated codes and filler words."""
    cpt_codes = [f"{n:05d}" for n in range(10000, 99999, 9)][:10_000] + PROCEDURES[:5] + PROCEDURES[6:]
    files = {k: folder / n for k, n in (("cpt", "cpt_long_2025.txt"), ("hcpcs", "HCPC2025_JAN.csv"),
                                        ("ptp", "ptp_practitioner_2025q2.txt"), ("mue", "MUE_Practitioner_2025Q2.csv"),
                                        ("pfs", "PPRRVU25_APR.csv"))}
    with files["cpt"].open("w") as out:
        out.write("Code\tLong Descriptor\n")
        out.writelines(f"{c}\tBENCH generated descriptor number {i} for a synthetic procedure code\n"
                       for i, c in enumerate(dict.fromkeys(cpt_codes)))
    with files["hcpcs"].open("w") as out:
        out.write("HCPC,SEQNUM,RECID,LONG DESCRIPTION,SHORT DESCRIPTION,PRICE1,MULT_PI,COV,ADD_DT,ACT_EFF_DT,"
                  "TERM_DT,ACTION_CD\n")
        out.writelines(f"{letter}{n:04d},00100,3,BENCH generated supply description {n},BENCH supply {n},,,,"
                       f"20200101,20200101,,N\n" for letter in "AEJLQ" for n in range(0, 9999, 7))
    with files["ptp"].open("w") as out:
        out.write("Column 1\tColumn 2\t*=in existence\tEffective\tDeletion\tModifier\tPTP Edit Rationale\n"
                  "\t\tprior to 1996\tDate\tDate\t0=not allowed\t\n")
        pairs = {("62303", "72128"), ("99213", "96372")}
        while len(pairs) < ptp_rows:
            pairs.add((rng.choice(cpt_codes), rng.choice(cpt_codes)))
        out.writelines(f"{a}\t{b}\t\t20240101\t*\t{rng.choice('019')}\tBENCH generated rationale\n"
                       for a, b in pairs if a != b)
    with files["mue"].open("w") as out:
        out.write("HCPCS/CPT Code,Practitioner Services MUE Values,MUE Adjudication Indicator,MUE Rationale\n")
        out.writelines(f"{c},{rng.randint(1, 12)},2 Date of Service Edit: Policy,BENCH rationale\n"
                       for c in dict.fromkeys(cpt_codes))
    with files["pfs"].open("w") as out:
        out.write(",,,STATUS,WORK,NON-FAC,GLOB,MULT,BILAT,ASST,CO-,TEAM,CONV\n"
                  "HCPCS,MOD,DESCRIPTION,CODE,RVU,PE RVU,DAYS,PROC,SURG,SURG,SURG,SURG,FACTOR\n")
        out.writelines(f"{c},,BENCH generated,A,1.00,1.00,090,2,{rng.choice('0129')},1,0,0,32.3465\n"
                       for c in dict.fromkeys(cpt_codes))
    return files


def timed_import(engine, label: str, run) -> dict:
    started = time.perf_counter()
    with Session(engine, expire_on_commit=False) as session:
        done = run(session)
        session.commit()
    seconds = time.perf_counter() - started
    return {f"{label}_rows": done.rows, f"{label}_rows_per_s": round(done.rows / seconds)}


def measure(url: str, files: dict[str, Path], questions: int, seed: Path | None = None) -> dict:
    seeded_database(url, seed)
    engine = make_engine(url)
    figures: dict = {}
    figures |= timed_import(engine, "cpt", lambda s: import_cpt(s, files["cpt"]))
    figures |= timed_import(engine, "hcpcs", lambda s: import_hcpcs(s, files["hcpcs"]))
    figures |= timed_import(engine, "ncci_ptp", lambda s: import_ptp(s, [files["ptp"]]))
    figures |= timed_import(engine, "mue", lambda s: import_mue(s, files["mue"]))
    figures |= timed_import(engine, "pfs_rvu", lambda s: import_pfs_rvu(s, files["pfs"]))
    with Session(engine) as session:
        lookup = Lookup(session)
        asked = find_codes(QUESTION, lookup.index).asked()
        cold = _questions_per_s(session, lookup, asked, questions, cold=True)
        warm = _questions_per_s(session, lookup, asked, questions * 3, cold=False)
        warnings = len(checks.run(session, asked, [lookup.facts(f.system, f.code) for f in asked],
                                  QUESTION, DOS).warnings)
    engine.dispose()
    figures.update(codes_per_question=len(asked), warnings_per_question=warnings, rate_per_s=round(cold, 1),
                   codes_per_s=round(cold * len(asked)), warm_rate_per_s=round(warm, 1))
    return figures


def _questions_per_s(session, lookup: Lookup, asked, questions: int, cold: bool) -> float:
    """Facts for every asked code and every check, per question. Cold: each question looks its
    codes up afresh; warm: the worker's cache already holds them (the checks always run)."""
    started = time.perf_counter()
    for _ in range(questions):
        if cold:
            lookup.forget()
        facts = [lookup.facts(f.system, f.code) for f in asked]
        checks.run(session, asked, facts, QUESTION, DOS)
    return questions / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ptp-rows", type=int, default=200_000, help="PTP pairs in the synthetic file.")
    parser.add_argument("--questions", type=int, default=300, help="Questions looked up and checked.")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only.")
    add_seed_option(parser)
    args = parser.parse_args()
    stop_on_sigterm()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="consultant-bench-") as tmp:
        folder = Path(tmp)
        files = synthetic_files(folder, args.ptp_rows, rng)
        result = {"what": "per question: 10+ codes looked up (facts, related) and every pair, unit and "
                          "modifier checked, with all five data sets loaded",
                  "sqlite": measure(f"sqlite:///{folder}/bench.db", files, args.questions,
                                     args.seeded_sqlite)}
        if not args.no_postgres:
            result["postgresql"] = _on_postgres(files, args.questions)
    result["rate_per_s"] = result["sqlite"]["rate_per_s"]
    emit("lookup", result)


def _on_postgres(files: dict[str, Path], questions: int) -> dict | str:
    from servers import MissingServer
    from servers.postgres import PostgresCluster

    try:
        cluster = PostgresCluster()
    except MissingServer as exc:
        return f"skipped: {exc}"
    cluster.start()
    try:
        return measure(cluster.create_database("bench_lookup"), files, questions)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
