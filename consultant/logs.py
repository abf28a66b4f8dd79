"""Loggers: decisions to consultant.vet, failures to consultant.error; addresses redacted, no bodies."""
from __future__ import annotations

import logging
import re
import sys

vet = logging.getLogger("consultant.vet")
error = logging.getLogger("consultant.error")
log = logging.getLogger("consultant")

_ADDRESS = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+)")


def redact(text: str | None) -> str:
    """'jane.doe@clinic.test' -> 'j***@clinic.test': enough to tell senders apart, not to contact them."""
    return _ADDRESS.sub(r"\1***@\2", text or "")


class OncePerOutage:
    """Log an outage once when it starts and once when it ends, not once per message."""

    def __init__(self, what: str):
        self.what = what
        self.down = False

    def failed(self, exc: BaseException) -> None:
        if not self.down:
            self.down = True
            error.warning("%s unreachable: %s (will retry quietly)", self.what, redact(str(exc)))

    def ok(self) -> None:
        if self.down:
            self.down = False
            log.info("%s reachable again", self.what)


def setup(level: str = "INFO", file: str = "") -> None:
    handler: logging.Handler = logging.FileHandler(file) if file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("consultant")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # APScheduler logs every run at INFO and a skipped overlapping run (which IDLE can cause while a
    # poll is already running, and which the running poll picks up) at WARNING.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
