"""The bench scripts run end to end at a tiny size and print one JSON line with the agreed keys.

They start their own real servers (Dovecot, aiosmtpd, the real worker as a child process); the
session's seeded SQLite file spares each the seconds of loading the code data. The scripts run at
the same time (they mostly wait on servers and child processes) and each test checks its own. No
figure is judged here: speed belongs to the scripts, not to the tests.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import stages  # noqa: E402  (bench/stages.py)

SMALL = {
    "ingest": ["--messages", "20", "--codes", "wide"],
    "latency": ["--messages", "5", "--gap", "0.05", "0.1"],
    "send": ["--messages", "20", "--rounds", "1"],
    "extract": ["--text-mb", "0.05", "--copies", "1"],
    "lookup": ["--ptp-rows", "500", "--questions", "3", "--no-postgres"],
    "web": ["--questions", "100", "--db", "sqlite"],
    "compute": ["--questions", "20", "--rounds", "1"],
}
SEEDED = {"ingest", "latency", "send", "lookup", "compute"}


@pytest.fixture(scope="module")
def runs(seeded_sqlite):
    """Every script started at once; each test waits for its own."""
    started = {}
    for name, args in SMALL.items():
        seed = ["--seeded-sqlite", str(seeded_sqlite)] if name in SEEDED else []
        started[name] = subprocess.Popen([sys.executable, str(ROOT / "bench" / f"{name}.py"), *args, *seed],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    yield started
    for process in started.values():
        if process.poll() is None:  # its test was not run (-k): SIGTERM lets it remove its servers and folders
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pipe in (process.stdout, process.stderr):
            pipe.close()


def report(runs, name: str) -> dict:
    out, err = runs[name].communicate(timeout=240)
    assert runs[name].returncode == 0, err.decode(errors="replace")[-3000:]
    lines = out.decode().splitlines()
    assert len(lines) == 1, lines
    figures = json.loads(lines[0])
    assert figures["bench"] == name
    assert figures["machine"]["cores"] >= 1 and figures["machine"]["python"].count(".") == 2
    return figures


@pytest.mark.slow
def test_ingest_drafts_every_question_and_reports_rate_ratio_and_peak_rss(runs):
    figures = report(runs, "ingest")
    assert (figures["n"], figures["db"], figures["codes"], figures["statuses"]) == (20, "sqlite", "wide", {"drafted": 20})
    assert figures["all_drafted"] and figures["poll_runs"] >= 1
    for key in ("rate_per_s", "ratio", "peak_rss_mb", "floor_rate_per_s", "startup_s"):
        assert figures[key] > 0, key
    # The worker's peak is its own, measured by wait4: at least what its bare start needs.
    assert figures["peak_rss_mb"] >= figures["startup_rss_mb"] * 0.5


@pytest.mark.slow
def test_latency_times_every_question_from_append_to_drafted(runs):
    figures = report(runs, "latency")
    assert (figures["n"], figures["drafted"], figures["all_drafted"], figures["idle"]) == (5, 5, True, True)
    assert 0 < figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]


@pytest.mark.slow
def test_send_compares_the_sender_with_a_bare_loop_with_and_without_the_sent_folder(runs):
    figures = report(runs, "send")
    assert figures["n"] == 20
    assert figures["rate_per_s"] > 0 and figures["ratio"] > 0 and figures["bare_rate_per_s"] > 0
    assert figures["sent_folder"]["ratio"] > 0 and figures["sent_folder"]["ratio_to_bare_with_append"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name, keys", [("extract", ("mb_per_s", "rate_per_s")),
                                        ("lookup", ("rate_per_s",)),
                                        ("web", ("p95_ms",)),
                                        ("compute", ("rate_per_s", "screen_per_s", "read_per_s", "extract_per_s",
                                                     "analyse_per_s", "draft_per_s", "index_build_ms"))])
def test_the_older_scripts_follow_the_same_conventions(runs, name, keys):
    figures = report(runs, name)
    for key in keys:
        assert figures[key] > 0, key


def test_stages_counts_each_sample_for_the_deepest_stage_on_its_stack():
    def frame(func, file):
        return f"{func} (site-packages/{file}:1)"
    poll = frame("Worker.poll_once", "consultant/worker.py")
    transition = frame("transition_many", "consultant/states.py")
    commit = frame("Session.commit", "sqlalchemy/orm/session.py")
    lines = [f"{frame('<module>', 'consultant')};{poll};{frame('screen', 'consultant/screen.py')} 3",
             f"{poll};{transition};{commit} 5",
             f"{poll};{transition} 2",
             f"{frame('<module>', 'consultant')};{frame('import_module', 'importlib/__init__.py')} 10"]
    samples = [(stages.frames(line.rpartition(" ")[0]), int(line.rpartition(" ")[2])) for line in lines]
    assert [stages.stage_of(stack) for stack, _ in samples] == [
        "screen", "commits and flushes", "writing a batch (UPDATE, inserts, events)", "startup, imports and exit"]
    text = stages.report(samples, top=3)
    assert "20 samples" in text and "startup, imports and exit | 50.0" in text and "commits and flushes | 25.0" in text
