"""Backoff for a server that is known to be down: the worker skips runs instead of knocking every few
seconds, waiting the job's interval after the first failure, then twice as long after each further
one, up to a cap; the first run that reaches the server resets it."""
from __future__ import annotations

import time
from collections.abc import Callable

CAP_SECONDS = 300.0  # never wait longer than this (or than the job's own interval, if that is longer)


class Backoff:
    """`ready()` before a run that would contact the server; then `settle(answered)` with whether it
    answered (None: the run did not need it, nothing changes). The wait is counted from the last
    `ready()`, so call it at the start of every run that may settle, even if another check skips it."""

    def __init__(self, first: float, cap: float = CAP_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.first = max(0.0, first)
        self.cap = max(cap, self.first)
        self.clock = clock
        self.delay = 0.0  # 0: the server is not known to be down
        self.not_before = 0.0
        self._checked = 0.0

    @property
    def down(self) -> bool:
        return self.delay > 0

    def ready(self) -> bool:
        """True when a run may contact the server now: it is not known down, or its wait is over."""
        self._checked = self.clock()
        return self._checked >= self.not_before

    def remaining(self) -> float:
        """Seconds until the next run may contact the server (0 when it may now)."""
        return max(0.0, self.not_before - self.clock())

    def settle(self, answered: bool | None) -> None:
        if answered is None:
            return
        if answered:
            self.delay, self.not_before = 0.0, 0.0
            return
        # Counted from when the run began, so a run at the next interval is not skipped by the
        # time this one took: the first failure costs no run, the second one run, then 3, 7...
        self.delay = self.first if self.delay == 0 else min(self.cap, self.delay * 2)
        self.not_before = self._checked + self.delay
