"""Extra drafting processes forked early, before the worker has threads or database connections.

An extra process started as a fresh interpreter (consultant.pool.Helper) imports the drafting code
again: about a second here, during which the worker drafts alone. `consultant poll` and
`consultant run` fork their extra processes instead, right after their own imports, while they
still have one thread and have opened no database: a forked process shares the code already
imported and is ready at once. It then waits for its settings like a fresh one
(consultant.pool.child), which a Pool sends when the first backlog comes; it makes its own
database connections and drafts the chunks it is sent. Meanwhile it warms up: what its first
question would do that needs neither (the finder's patterns compiled, the reply templates loaded)
is done while the worker still fetches. Any spare no Pool took is ended when the command exits (a
poll with nothing to do); one that is never sent its settings holds nothing but its share of
memory.

Forking is only safe with one thread (a lock held by another thread would stay locked in the
child forever) and with no database connection open (SQLite's locks and PostgreSQL's sessions
cannot be shared with a child). Where either is not so (an extra process started again after one
died, when the worker's threads run; the demo, whose servers are threads; tests), nothing is
forked and the pool starts fresh interpreters as before.
"""
from __future__ import annotations

import atexit
import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

_spares: list[tuple["Forked", socket.socket]] = []  # forked, not yet taken by a Pool


class Forked:
    """A forked extra process, with the part of subprocess.Popen's interface a Helper uses."""

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it has ended, how is unknown
                self.returncode = -1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.005)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def can_fork() -> bool:
    """Whether forking now is safe: this process runs one thread (see the module's note)."""
    return hasattr(os, "fork") and threading.active_count() == 1


def fork(count: int, warm: Callable[[], object] | None = None) -> int:
    """Fork `count` extra processes now, if that is safe; how many were forked. Call it before the
    first database connection is made. Each calls `warm` first, while it waits: what its first
    question would do anyway that needs no settings sent and no database (compiling patterns,
    loading templates), done while the worker still fetches."""
    if count <= 0 or not can_fork():
        return 0
    if not _spares:
        atexit.register(release)
    sys.stdout.flush()  # what is buffered would otherwise be written twice
    # The imported code is left out of the collector's passes, here and in the children: their
    # passes would also copy the pages the children share with us.
    gc.freeze()
    sys.stderr.flush()
    for _ in range(count):
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            _child(ours, theirs, warm)  # does not return
        theirs.close()
        _spares.append((Forked(pid), ours))
    return count


def _child(ours: socket.socket, theirs: socket.socket, warm: Callable[[], object] | None) -> None:
    """In the forked process: serve the worker, then exit without returning into the code that
    forked us (and without running its exit handlers or closing its connections)."""
    code = 1
    try:
        ours.close()
        for _forked, other in _spares:  # the worker's ends of earlier spares: held here, they
            other.close()               # would keep those processes from seeing the worker go
        from .pool import child

        if warm is not None:
            try:
                warm()
            except Exception:  # only a head start: the first question does it again, and says why
                pass

        child(theirs.detach())
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # the worker hears of it as a process gone; no traceback here
        code = 1
    finally:
        os._exit(code)


def take(count: int) -> list[tuple[Forked, socket.socket]]:
    """Up to `count` of the forked spares, for a Pool to use as its extra processes."""
    taken = _spares[:max(0, count)]
    del _spares[:len(taken)]
    return taken


def release() -> None:
    """End the spares no Pool took (at exit). Such a spare has opened nothing and has nothing to
    write (it is warming up or waiting for its settings), so it is killed rather than waited for:
    a poll with nothing to do does not wait for its warm-up."""
    for forked, ours in take(len(_spares)):
        ours.close()
        forked.kill()
        forked.wait()
