"""Extra drafting processes forked at the start of `consultant poll` (consultant.spares): they draft
a share of a backlog, a poll with nothing to do leaves none behind, and a forked process that fails
never goes on to run the code of the process it was forked from."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

from consultant import spares
from consultant.db import make_engine
from consultant.models import Question
from outagesupport import fill_inbox
from support import question_bytes

N = 120  # three chunks for each side at least (pool.MIN_SHARED is 40)


def poll_env(db_url, user, tmp_path, mark: str) -> dict:
    return dict(os.environ, CONSULTANT_DATABASE__URL=db_url, CONSULTANT_PATHS__VAR=str(tmp_path),
                CONSULTANT_IMAP__HOST=user.host, CONSULTANT_IMAP__PORT=str(user.port),
                CONSULTANT_IMAP__SECURITY="plain", CONSULTANT_IMAP__USERNAME=user.username,
                CONSULTANT_IMAP__PASSWORD=user.password, CONSULTANT_WORKER__PROCESSES="1",
                CONSULTANT_TEST_MARK=mark)


def poll(env) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "consultant", "poll", "--once"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def left_behind(mark: str) -> list[int]:
    """Processes still running with this test's mark in their environment (forked children inherit it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:  # gone meanwhile, or not ours to read
                continue
            if f"CONSULTANT_TEST_MARK={mark}".encode() in environ.split(b"\0"):
                found.append(int(entry.name))
    return found


def backlog(user, count: int) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    fill_inbox(user, [dict(msg=question_bytes(n, sender=f"coder{n}@clinic{n % 7}.test"),
                           date=now - timedelta(seconds=count - n)) for n in range(count)])


def test_a_poll_forks_its_extra_process_which_drafts_a_share_of_the_backlog(db_url, dovecot, tmp_path):
    user, mark = dovecot.add_user(), uuid.uuid4().hex
    backlog(user, N)
    proc = poll(poll_env(db_url, user, tmp_path, mark))
    assert f"fetched {N} new" in proc.stdout and f"drafted {N}," in proc.stdout
    assert re.search(r"extra drafting process \d+ set going \(forked at start\)", proc.stderr), proc.stderr
    shared = int(re.search(r"extra drafting processes drafted (\d+) questions", proc.stderr).group(1))
    assert 0 < shared <= N
    assert left_behind(mark) == []


def test_the_running_worker_forks_its_extra_process_at_start_and_leaves_none_behind(sqlite_url, dovecot, tmp_path):
    user, mark = dovecot.add_user(), uuid.uuid4().hex
    backlog(user, N)
    proc = subprocess.Popen([sys.executable, "-m", "consultant", "run"], env=poll_env(sqlite_url, user, tmp_path, mark),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    engine = make_engine(sqlite_url)
    try:
        deadline, drafted = time.monotonic() + 90, 0
        while drafted < N and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            with Session(engine) as session:
                drafted = session.execute(select(func.count()).where(Question.status == "drafted")).scalar_one()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        engine.dispose()
        if proc.poll() is None:
            proc.kill()
    assert drafted == N, out
    assert proc.returncode == 0 and "worker stopped" in out and "Traceback" not in out, out
    assert re.search(r"extra drafting process \d+ set going \(forked at start\)", out), out
    assert left_behind(mark) == []


def test_a_poll_with_nothing_to_do_leaves_no_process_behind(sqlite_url, dovecot, tmp_path):
    user, mark = dovecot.add_user(), uuid.uuid4().hex
    proc = poll(poll_env(sqlite_url, user, tmp_path, mark))
    assert "fetched 0 new" in proc.stdout and "set going" not in proc.stderr
    assert left_behind(mark) == []


# Run in a fresh interpreter (pytest's own process may have threads, and must never be forked).
FAILING_SPARE = """
import os, sys
from consultant import spares
assert spares.fork(1) == 1
[(forked, ours)] = spares.take(1)
ours.sendall(b"\\x00\\x00\\x00\\x05junk!")  # a length-prefixed message that is not a pickle
print("after the fork", os.getpid(), flush=True)
print("spare exit code", forked.wait(30), flush=True)
"""


def test_a_forked_process_that_fails_exits_without_running_what_follows_the_fork(tmp_path):
    proc = subprocess.run([sys.executable, "-c", FAILING_SPARE], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("after the fork") == 1  # only the parent went on
    assert "spare exit code 1" in proc.stdout and "Traceback" not in proc.stderr


def test_nothing_is_forked_while_another_thread_runs():
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert not spares.can_fork()
        assert spares.fork(1) == 0 and spares.take(1) == []
    finally:
        release.set()
        thread.join()
