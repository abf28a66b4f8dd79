"""Where a profiled worker run spends its wall time, by pipeline stage and by function.

Reads the collapsed stacks that `bench/ingest.py --profile FILE` writes (py-spy's raw format, idle
samples included, so waiting on Dovecot or the database counts; the worker's thread that reads what
its extra processes send, and the one checkpointing SQLite's WAL, are left out). Each sample goes to the deepest
stage marker on its stack: a commit inside a state change counts as a commit, a log line written
while drafting counts as logging.

  bench/stages.py /tmp/poll.sqlite-2000.txt [--top 25]
"""
from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
# (file suffix, function or None for any) -> stage, checked on every frame; the deepest match wins.
MARKERS = [
    ("consultant/process.py", "__init__", "code index (build, refresh)"),
    ("consultant/finish.py", "__init__", "code index (build, refresh)"),
    ("consultant/worker.py", "poll_once", "other work in poll_once"),
    ("consultant/worker.py", "_fetch", "IMAP fetch"),
    ("consultant/fetch.py", None, "IMAP fetch"),
    ("consultant/fetch.py", "_store", "storing (dedupe, create rows)"),
    ("consultant/process.py", "run_once", "batch select, attempts update"),
    ("consultant/process.py", "claim", "batch select, attempts update"),
    ("consultant/process.py", "_read", "batch select, attempts update"),
    ("consultant/process.py", "_prepare", "batch select, attempts update"),
    ("consultant/lookup.py", "refresh", "code index (build, refresh)"),
    ("consultant/finish.py", "refresh", "code index (build, refresh)"),
    ("consultant/finish.py", "work", "finishing in the worker (other)"),
    ("consultant/finish.py", "screened", "screen"),
    ("consultant/process.py", "_limits", "screen"),
    ("consultant/screen.py", None, "screen"),
    ("consultant/rules.py", None, "screen"),
    ("consultant/recent.py", None, "screen"),
    ("consultant/pool.py", "complete", "waiting for the extra process"),
    ("consultant/pool.py", "_finish_here", "finishing in the worker (other)"),
    ("consultant/finish.py", "finish", "finishing in the worker (other)"),
    ("consultant/reading.py", "read_message", "parse"),
    ("consultant/extract.py", "find_codes", "extract"),
    ("consultant/analysis.py", "analyse", "lookup/checks"),
    ("consultant/draft.py", "draft_reply", "draft rendering"),
    ("consultant/process.py", "_write", "writing a batch (UPDATE, inserts, events)"),
    ("consultant/states.py", None, "writing a batch (UPDATE, inserts, events)"),
    ("consultant/states.py", "create_many", "storing (dedupe, create rows)"),
    ("consultant/batch.py", "findings_json", "finishing in the worker (other)"),
    ("sqlalchemy/orm/session.py", "commit", "commits and flushes"),
    ("sqlalchemy/orm/session.py", "flush", "commits and flushes"),
    ("consultant/servicelog.py", None, "service log"),
    ("logging/__init__.py", "handle", "logging"),
]


def frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for part in stack.split(";"):
        match = FRAME.match(part.strip())
        out.append((match["func"], match["file"]) if match else (part.strip(), ""))
    return out


def stage_of(stack: list[tuple[str, str]]) -> str:
    stage = "startup, imports and exit"
    for func, file in stack:
        for suffix, name, label in MARKERS:
            if file.endswith(suffix) and (name is None or func == name or func.endswith("." + name)):
                stage = label
    return stage


# Threads beside the worker's own (the one reading an extra process's pipe, the one copying SQLite's
# WAL back): left out, they mostly wait.
BESIDE = (("consultant/pool.py", "_receive"), ("consultant/checkpoint.py", "_run"))


def read(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    samples = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            parsed = frames(stack)
            if not any(file.endswith(suffix) and func.endswith(name) for func, file in parsed for suffix, name in BESIDE):
                samples.append((parsed, int(count)))
    return samples


def report(samples, top: int) -> str:
    total = sum(count for _, count in samples) or 1
    stages, leaves, inclusive = Counter(), Counter(), Counter()
    for stack, count in samples:
        stages[stage_of(stack)] += count
        func, file = stack[-1]
        leaves[f"{func} ({file.rsplit('site-packages/', 1)[-1]})"] += count
        for func, file in {(f, p) for f, p in stack if "consultant/" in p}:
            inclusive[f"{func} ({file.rsplit('consultant/', 1)[-1]})"] += count
    lines = [f"{total} samples", "", "stage | % of wall time", "--- | ---"]
    lines += [f"{name} | {100 * n / total:.1f}" for name, n in stages.most_common()]
    lines += ["", "self time (leaf function) | %", "--- | ---"]
    lines += [f"{name} | {100 * n / total:.1f}" for name, n in leaves.most_common(top)]
    lines += ["", "consultant function, inclusive | %", "--- | ---"]
    lines += [f"{name} | {100 * n / total:.1f}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="Collapsed stacks from bench/ingest.py --profile.")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(report(read(args.profile), args.top))


if __name__ == "__main__":
    main()
