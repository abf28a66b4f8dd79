"""Extra drafting processes forked at the start of `consultant poll` (consultant.spares): they draft
a share of a backlog, warm up while they wait, a poll with nothing to do leaves none behind, and a
forked process that fails never goes on to run the code of the process it was forked from."""
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


# A spare warms up before it waits for its settings; a warm-up that fails leaves it waiting as usual.
WARMING_SPARE = """
import os, sys
from pathlib import Path
from consultant import spares

def warm():
    Path(sys.argv[1] + ".new").write_text(str(os.getpid()))
    Path(sys.argv[1] + ".new").rename(sys.argv[1])  # whole when the worker sees it
    raise RuntimeError("warm-up failed")

assert spares.fork(1, warm=warm) == 1
[(forked, ours)] = spares.take(1)
while not Path(sys.argv[1]).exists():
    if forked.poll() is not None:
        break
print("warmed in", Path(sys.argv[1]).read_text(), "parent", os.getpid(), flush=True)
print("still waiting", forked.poll() is None, flush=True)
ours.close()  # no settings come: it ends
print("spare exit code", forked.wait(30), flush=True)
"""


def test_a_forked_process_warms_up_first_and_a_failed_warm_up_leaves_it_waiting(tmp_path):
    proc = subprocess.run([sys.executable, "-c", WARMING_SPARE, str(tmp_path / "warmed")], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    warmed = re.search(r"warmed in (\d+) parent (\d+)", proc.stdout)
    assert warmed and warmed[1] != warmed[2], proc.stdout  # in the spare, not in the worker
    assert "still waiting True" in proc.stdout and "spare exit code 0" in proc.stdout
    assert "Traceback" not in proc.stderr


# A spare no Pool took is ended at exit even in the middle of its warm-up (here: a long one).
SLOW_WARM_UP = """
import time
from consultant import spares
assert spares.fork(1, warm=lambda: time.sleep(600)) == 1
print("forked", flush=True)
"""


def test_a_spare_still_warming_up_is_ended_when_the_command_exits(tmp_path):
    mark = uuid.uuid4().hex
    proc = subprocess.run([sys.executable, "-c", SLOW_WARM_UP], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=dict(os.environ, CONSULTANT_TEST_MARK=mark))
    assert proc.returncode == 0 and proc.stdout == "forked\n", proc.stderr
    assert left_behind(mark) == []


def test_the_warm_up_compiles_the_finder_and_loads_every_reply_template():
    from consultant import extract_tokens
    from consultant.config import Settings
    from consultant.draft import environment
    from consultant.finish import warm_up

    settings = Settings()
    warm_up(settings)
    assert extract_tokens.HOT  # the finder's patterns, compiled
    templates = environment(settings.templates_dir())
    names = {p.relative_to(settings.templates_dir()).as_posix()
             for p in (settings.templates_dir() / "reply").glob("*.j2")}
    assert names and names <= set(templates.__dict__["_loaded"])
