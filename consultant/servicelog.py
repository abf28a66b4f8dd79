"""Service log: one row per poll, send and sweep run, kept 30 days, read by the operator view."""
from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from .logs import OncePerOutage, redact
from .models import utcnow
from .opstables import ServiceRun

JOBS = ("poll", "send", "sweep")
SERVER_OF = {"poll": "imap", "send": "smtp"}  # the server whose answer a run records
KEEP_DAYS = 30
MAX_ERROR_CHARS = 300


def clean_error(text: str | None) -> str | None:
    """One short line with addresses redacted: error texts may quote a recipient or a server reply."""
    if not text:
        return None
    line = re.sub(r"\s+", " ", redact(str(text))).strip()
    return line[:MAX_ERROR_CHARS] or None


def counts_of(*parts) -> dict[str, int]:
    """Merge dataclass counters (FetchCounts, Counts, SendCounts...) into one flat dict of ints."""
    merged: dict[str, int] = {}
    for part in parts:
        for f in dataclasses.fields(part):
            value = getattr(part, f.name)
            if isinstance(value, int) and not isinstance(value, bool):
                merged[f.name] = merged.get(f.name, 0) + value
    return merged


class Watch(OncePerOutage):
    """An outage logger that also remembers, for the current run, whether the server answered."""

    def __init__(self, what: str):
        super().__init__(what)
        self.reset()

    def reset(self) -> None:
        """Forget the last run's outcome (the outage itself, and its one log line, carry over)."""
        self.answered: bool | None = None
        self.problem: str | None = None

    def failed(self, exc: BaseException) -> None:
        super().failed(exc)
        self.answered = False
        self.problem = clean_error(f"{self.what} unreachable: {exc}")

    def ok(self) -> None:
        super().ok()
        self.answered = True


class ServiceLog:
    """Writes run rows for one worker; a database outage is logged once and never raised."""

    def __init__(self, engine: Engine, outage: OncePerOutage | None = None):
        """`outage`: the owner's own database watch, so one outage is logged once, not once here too."""
        self.engine = engine
        self.outage = outage or OncePerOutage("database (service log)")

    def record(self, job: str, started_at: datetime, *, ok: bool, server_ok: bool | None = None,
               counts: dict | None = None, error: str | None = None,
               finished_at: datetime | None = None) -> bool:
        """Store one run; return False if the database did not take it.

        A run with nothing to do and no error that ended like the job's previous row, itself
        idle, extends that row instead of adding one.
        """
        if job not in JOBS:
            raise ValueError(f"unknown job {job!r}")
        finished_at = finished_at or utcnow()
        counts = dict(counts or {})
        error = clean_error(error)
        idle = ok and error is None and not any(counts.values())
        try:
            with Session(self.engine) as session:
                last = session.execute(select(ServiceRun).where(ServiceRun.job == job)
                                       .order_by(ServiceRun.finished_at.desc(), ServiceRun.id.desc())
                                       .limit(1)).scalars().first()
                if idle and last is not None and last.idle and last.server_ok == server_ok:
                    session.execute(update(ServiceRun).where(ServiceRun.id == last.id)
                                    .values(finished_at=finished_at, runs=ServiceRun.runs + 1)
                                    .execution_options(synchronize_session=False))
                else:
                    session.add(ServiceRun(job=job, started_at=started_at, finished_at=finished_at,
                                           ok=ok, server_ok=server_ok, idle=idle, counts=counts,
                                           error=error))
                session.commit()
        except SQLAlchemyError as exc:
            self.outage.failed(exc)
            return False
        self.outage.ok()
        return True


def prune(session: Session, now: datetime, keep_days: int = KEEP_DAYS) -> int:
    """Delete runs that finished more than `keep_days` ago; return how many. The caller commits."""
    result = session.execute(delete(ServiceRun).where(ServiceRun.finished_at < now - timedelta(days=keep_days))
                             .execution_options(synchronize_session=False))
    return result.rowcount or 0


def as_dict(run: ServiceRun | None) -> dict | None:
    if run is None:
        return None
    return dict(id=run.id, job=run.job, started_at=run.started_at, finished_at=run.finished_at, ok=run.ok,
                server_ok=run.server_ok, idle=run.idle, runs=run.runs, counts=run.counts or {},
                error=run.error)


def latest(session: Session, job: str, *conditions) -> ServiceRun | None:
    """The job's most recent run (matching `conditions`, if given)."""
    return session.execute(select(ServiceRun).where(ServiceRun.job == job, *conditions)
                           .order_by(ServiceRun.finished_at.desc(), ServiceRun.id.desc())
                           .limit(1)).scalars().first()


def last_success(session: Session, job: str) -> datetime | None:
    """When the job last finished a run without an error."""
    run = latest(session, job, ServiceRun.ok.is_(True))
    return run.finished_at if run else None


def recent(session: Session, job: str | None = None, limit: int = 20) -> list[dict]:
    """The newest runs first, for a table on the operator page."""
    query = select(ServiceRun)
    if job is not None:
        query = query.where(ServiceRun.job == job)
    query = query.order_by(ServiceRun.finished_at.desc(), ServiceRun.id.desc()).limit(max(1, min(limit, 500)))
    return [as_dict(run) for run in session.execute(query).scalars()]


def summary(session: Session) -> dict:
    """The last poll, send and sweep, when each last succeeded, and whether IMAP and SMTP answered
    the last time a run needed them (None: no run has needed them yet)."""
    body: dict = {}
    for job in JOBS:
        body[job] = dict(last=as_dict(latest(session, job)), last_success_at=last_success(session, job))
    for job, server in SERVER_OF.items():
        run = latest(session, job, ServiceRun.server_ok.is_not(None))
        body[server] = dict(answered=run.server_ok if run else None, at=run.finished_at if run else None,
                            error=None if run is None or run.server_ok else run.error)
    return body
