"""Loggers: decisions to consultant.vet, failures to consultant.error; addresses redacted, no bodies.

Call sites log ids, not content, and pass addresses through redact(). As a second line, every line
the handler writes (exception text and tracebacks included) is scrubbed: addresses redacted,
patient identifiers masked, and the values that database errors echo (SQL parameters, PostgreSQL's
DETAIL line with a key or the failing row) left out.
"""
from __future__ import annotations

import logging
import re
import sys

from .redact import mask

vet = logging.getLogger("consultant.vet")
error = logging.getLogger("consultant.error")
log = logging.getLogger("consultant")

_ADDRESS = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+)")
_ECHOED = (
    (re.compile(r"\[parameters: [^\n]*"), "[parameters: (not logged)]"),
    (re.compile(r"(?m)^(\s*DETAIL:).*$"), r"\1 (not logged)"),
)
_SMTP_REPLY = re.compile(r"(SMTP \S+)(?::\s*)?(\s[245]\.[0-9]{1,3}\.[0-9]{1,3})?[^;()]*(?:\([^)]*\)[^;()]*)*")
# Other libraries' loggers that our handler also serves, never below WARNING: their debug output
# (IMAP commands and responses, SQL with parameters) may carry message content.
THIRD_PARTY = ("apscheduler", "imapclient", "sqlalchemy", "aiosmtpd", "mail.log")


def redact(text: str | None) -> str:
    """'jane.doe@clinic.test' -> 'j***@clinic.test': enough to tell senders apart, not to contact them."""
    return _ADDRESS.sub(r"\1***@\2", text or "")


def without_server_text(reason: str) -> str:
    """A send failure for the log: an SMTP reply keeps its codes but not its words, which servers
    fill with whatever they echo (the recipient, a name, a line of the message)."""
    return _SMTP_REPLY.sub(lambda m: f"{m[1]}{m[2] or ''} (server text not logged)", reason)


# What every identifier that consultant.redact masks needs, in an ASCII line: one of the labels of
# its patterns (BIRTH, LABELLED's strong labels, PHONE_LABELLED), a weak label with an ID word
# (LABELLED), or digits around a separator (SSN, PHONE). A line with none of them is kept as it is,
# without the patterns' scans; tests/test_log_scrub.py holds this against mask() itself.
_LABELS = ("dob", "d.o.b", "birth", "born", "mrn", "mr#", "ssn", "ss#", "mbi", "hic", "medical", "social",
           "ph", "tel", "fax", "cell", "mobile", "pager")
_WEAK_LABELS = ("member", "mbr", "sub", "policy", "account", "acct", "patient", "pt", "chart", "ins", "medica",
                "beneficiary", "health")
_ID_WORDS = ("id", "num", "nbr", "no", "#")


def _literals(words: tuple[str, ...]) -> re.Pattern:
    return re.compile("|".join(re.escape(word) for word in words).encode())


_LABEL_SEEN, _WEAK_SEEN, _ID_SEEN = _literals(_LABELS), _literals(_WEAK_LABELS), _literals(_ID_WORDS)
# Lower-case letters, every digit as 0: "SSN 123-45" -> b"ssn 000-00".
_SHAPE = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ123456789", b"abcdefghijklmnopqrstuvwxyz000000000")


def may_hold_identifier(text: str) -> bool:
    """False only when mask() would find nothing in text (an ASCII line without what any
    identifier needs); True means look."""
    if not text.isascii():  # case-insensitive matching reaches beyond lower() only outside ASCII
        return True
    shape = text.encode("ascii").translate(_SHAPE)
    return (b"00-0000" in shape or b"00 0000" in shape or b"00.0000" in shape
            or _LABEL_SEEN.search(shape) is not None
            or (_WEAK_SEEN.search(shape) is not None and _ID_SEEN.search(shape) is not None))


def scrub(text: str) -> str:
    """A log line fit to keep: values echoed by database errors dropped, addresses redacted,
    patient identifiers masked. Each step runs only on a line that has what it looks for."""
    if "[parameters: " in text or "DETAIL:" in text:
        for pattern, replacement in _ECHOED:
            text = pattern.sub(replacement, text)
    if "@" in text:
        text = redact(text)
    return (mask(text) if may_hold_identifier(text) else text) or ""


class ScrubbingFormatter(logging.Formatter):
    """Scrubs the whole record as written, exception text and traceback included."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


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


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def uvicorn_config(level: str = "INFO", file: str = "") -> dict:
    """uvicorn's log_config: its error log (tracebacks of failed requests) and access log go
    through the same scrubbing, to the same place as ours."""
    handler = {"class": "logging.FileHandler", "filename": file} if file else {
        "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"scrubbed": {"()": ScrubbingFormatter, "fmt": FORMAT}},
            "handlers": {"default": dict(handler, formatter="scrubbed")},
            "loggers": {"uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
                        "uvicorn.error": {"level": level},
                        "uvicorn.access": {"handlers": ["default"], "level": level, "propagate": False}}}


def setup(level: str = "INFO", file: str = "") -> None:
    handler: logging.Handler = logging.FileHandler(file) if file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(ScrubbingFormatter(FORMAT))
    root = logging.getLogger("consultant")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    for name in THIRD_PARTY:
        other = logging.getLogger(name)
        other.handlers[:] = [handler]
        other.setLevel(logging.WARNING)
        other.propagate = False
    # APScheduler logs every run at INFO and a skipped overlapping run (which IDLE can cause while a
    # poll is already running, and which the running poll picks up) at WARNING.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
