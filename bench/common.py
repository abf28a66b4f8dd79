"""What the bench scripts share: machine facts, the one-line JSON report, percentiles, synthetic
questions, a seeded database, a throwaway Dovecot mailbox, a worker's config, and a child process
measured for wall time and peak RSS.

Each script puts the repository root and tests/ on sys.path (`setup_path`), so the real servers of
tests/servers and the helpers of tests/support.py are the ones the tests use.
"""
from __future__ import annotations

import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def setup_path() -> None:
    for folder in (str(ROOT / "tests"), str(ROOT)):
        if folder not in sys.path:
            sys.path.insert(0, folder)


setup_path()

from support import question_bytes  # noqa: E402  (tests/support.py)

# Codes the bundled data knows (CPT/HCPCS starter set, ICD-10-CM), so every question is answered.
PROCEDURES = ["62303", "72128", "99213", "99214", "J1100", "96372", "20610", "64483", "77003", "62304"]
DIAGNOSES = ["M54.16", "I10", "E11.9", "M17.11"]
MODIFIERS = ["25", "59", "XS", "LT", "RT", "50"]


def machine() -> dict:
    """Where the figures came from: with a busy machine they are only indicative."""
    return {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def emit(bench: str, figures: dict) -> None:
    """Print the script's one JSON line: its name, its figures, the machine."""
    print(json.dumps({"bench": bench, **figures, "machine": machine()}), flush=True)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))  # ceil, at least the first
    return ordered[int(rank) - 1]


def spread_ms(values_ms: list[float]) -> dict:
    return {"p50_ms": round(percentile(values_ms, 0.5), 2), "p95_ms": round(percentile(values_ms, 0.95), 2),
            "max_ms": round(max(values_ms), 2)}


def wide_diagnoses(count: int = 3000, seed: int = 5) -> list[str]:
    """`count` billable ICD-10-CM codes picked at random from the package's (bundled: the worker
    knows them). Real mail asks about many different codes, and the first question about a code
    looks it up in the database: with DIAGNOSES alone, a backlog asks about 14 codes in all."""
    import simple_icd_10_cm as icd

    billable = [code for code in icd.get_all_codes(True) if icd.is_leaf(code)]
    return random.Random(seed).sample(billable, count)


def question(n: int, rng: random.Random, diagnoses: list[str] = DIAGNOSES) -> bytes:
    """A made-up coding question of about 1-2 KB: new text with codes, quoted history, a signature.
    Five questions per sender, so the per-sender rate limit (20 an hour) never ignores one."""
    asked = rng.sample(PROCEDURES, rng.randint(1, 4))
    first = asked[0] + (f"-{rng.choice(MODIFIERS)}" if rng.random() < 0.5 else "")
    rest = " and ".join(asked[1:]) or "nothing else"
    body = (f"Hello,\n\nWe had a patient on 03/{rng.randint(10, 28)}/2026 where the physician did {first} "
            f"together with {rest} in the same session. Diagnosis {rng.choice(diagnoses)}, and the "
            f"clearinghouse flagged claim {rng.randint(10**8, 10**9)} for the pair.\n\n"
            f"Can these be billed together, and which modifier is right here? The payer is asking for "
            f"the operative note and we want to be sure before we resubmit. Units were {rng.randint(1, 3)}.\n\n"
            "Thank you for your help,\n"
            f"-- \nCoder {n}\nBilling office, Ridgeview Clinic {n % 97}\nPhone 404-555-{n % 10000:04d}\n\n"
            f"On Mon, 2 Mar 2026 at 09:{n % 60:02d}, Ridgeview Billing wrote:\n"
            + "".join(f"> Earlier line {i} of the thread about the claim from last month, kept as quoted text.\n"
                      for i in range(rng.randint(4, 12))))
    return question_bytes(n, body.replace("\n", "\r\n"), sender=f"coder{n // 5}@clinic{n % 97}.test")


def questions(count: int, seed: int = 11, diagnoses: list[str] = DIAGNOSES) -> list[bytes]:
    rng = random.Random(seed)
    return [question(n, rng, diagnoses) for n in range(1, count + 1)]


def seeded_database(url: str, template: Path | None = None) -> None:
    """Schema and the bundled code data (starter CPT/HCPCS set and ICD-10-CM), as the tests seed it;
    a SQLite URL may copy an already seeded file (`template`) instead."""
    if template is not None and url.startswith("sqlite:///"):
        shutil.copyfile(template, url.removeprefix("sqlite:///"))
        return
    from conftest import seed  # tests/conftest.py

    seed(url)


def add_seed_option(parser) -> None:
    parser.add_argument("--seeded-sqlite", type=Path, metavar="FILE",
                        help="Copy this SQLite file, already seeded with the code data, instead of seeding "
                             "(seeding takes seconds; the tests pass theirs).")


def imap_login(user):
    from imapclient import IMAPClient

    client = IMAPClient(user.host, user.port, ssl=False, timeout=60)
    client.login(user.username, user.password)
    return client


def fill_mailbox(user, raws: list[bytes], chunk: int = 500, folder: str = "INBOX", dates: list | None = None) -> float:
    """MULTIAPPEND the messages in chunks (serial APPEND slows down as a maildir grows), each with
    its arrival time (INTERNALDATE) from `dates` if given; seconds."""
    started = time.perf_counter()
    client = imap_login(user)
    messages = [dict(msg=raw, date=at) for raw, at in zip(raws, dates)] if dates else raws
    try:
        for first in range(0, len(messages), chunk):
            client.multiappend(folder, messages[first:first + chunk])
    finally:
        client.logout()
    return time.perf_counter() - started


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value))  # a TOML basic string reads JSON's escapes the same way


def worker_config(folder: Path, db_url: str, user, **sections: dict) -> tuple[Path, dict]:
    """A config file as an operator writes it for this mailbox and database, plus the environment
    that carries the IMAP password (secrets never go into the file). Everything else is default
    unless `sections` says otherwise."""
    data = {"database": {"url": db_url},
            "imap": {"host": user.host, "port": user.port, "security": "plain", "username": user.username}}
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    text = "".join(f"[{section}]\n" + "".join(f"{key} = {_toml(v)}\n" for key, v in values.items()) + "\n"
                   for section, values in data.items())
    path = folder / "consultant.toml"
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSULTANT_")}
    env.update(CONSULTANT_CONFIG=str(path), CONSULTANT_IMAP__PASSWORD=user.password)
    return path, env


def consultant(*args: str) -> list[str]:
    """The installed `consultant` command of this venv."""
    return [str(BIN / "consultant"), *args]


# A small interpreter starts the measured command and reports its wall time and wait4() peak RSS.
# Linux keeps, in ru_maxrss, the high-water mark of the memory a process had before exec() too: a
# child forked straight from this (large) bench process would report our size, not its own.
LAUNCHER = """
import os, signal, subprocess, sys, time
report, command = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
child = subprocess.Popen(command)
signal.signal(signal.SIGTERM, lambda *_: child.kill())
_pid, status, usage = os.wait4(child.pid, 0)
with open(report, "w") as out:
    out.write(f"{time.perf_counter() - started} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} "
              f"{usage.ru_utime + usage.ru_stime}")
"""


def run_measured(command: list[str], env: dict, log: Path) -> tuple[float, float, int, float]:
    """Run a child to its end: (wall seconds, its own peak RSS in MB, exit status, CPU seconds of
    it and the processes it waited for)."""
    report = log.with_name(log.name + ".rusage")
    with open(log, "ab") as out:
        launcher = subprocess.Popen([sys.executable, "-I", "-S", "-c", LAUNCHER, str(report), *command], env=env,
                                    stdout=out, stderr=out, stdin=subprocess.DEVNULL, cwd=ROOT)
        try:
            launcher.wait()
        except BaseException:
            launcher.terminate()  # the launcher kills the measured command
            launcher.wait()
            raise
    seconds, peak_kib, code, cpu = report.read_text().split()
    return float(seconds), int(peak_kib) / 1024, int(code), float(cpu)


def stop_on_sigterm() -> None:
    """SIGTERM ends a bench like Ctrl-C does: servers and temp folders are cleaned up on the way out."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def status_counts(db_url: str) -> dict[str, int]:
    from sqlalchemy import func, select
    from sqlmodel import Session

    from consultant.db import make_engine
    from consultant.models import Question

    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            rows = session.execute(select(Question.status, func.count()).group_by(Question.status)).all()
    finally:
        engine.dispose()
    return {status: count for status, count in rows}
