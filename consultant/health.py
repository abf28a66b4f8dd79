"""Health for /healthz: the database answers and the worker polled successfully not long ago."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from . import servicelog
from .config import Settings
from .models import as_utc

POLL_INTERVALS = 3  # a poll older than this many intervals means the worker is stuck or down


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _run(run: dict | None) -> dict | None:
    """The public part of a run: what happened and when; counts, not content."""
    if run is None:
        return None
    return dict(at=_iso(run["finished_at"]), ok=run["ok"], server_ok=run["server_ok"], idle=run["idle"],
                runs=run["runs"], counts=run["counts"], error=run["error"])


def check(engine: Engine, settings: Settings, now: datetime) -> tuple[bool, dict]:
    """(healthy, body). Healthy: the database answers and the last successful poll finished within
    POLL_INTERVALS x worker.poll_every of `now`. The body is JSON-ready (strings, numbers, bools).

    Never raises for an unreachable database; its error text is not put in the body, which is
    served without a login.
    """
    now = as_utc(now)
    limit = POLL_INTERVALS * settings.worker.poll_every
    body: dict = dict(status="failing", checked_at=_iso(now), database=dict(ok=False),
                      poll=dict(ok=False, last_success_at=None, age_seconds=None, max_age_seconds=limit))
    try:
        with Session(engine.execution_options(readonly=True)) as session:
            session.execute(text("SELECT 1"))
            body["database"]["ok"] = True
            summary = servicelog.summary(session)
    except SQLAlchemyError:
        body["database"]["error"] = "unreachable"
        return False, body
    last_ok = summary["poll"]["last_success_at"]
    if last_ok is not None:
        age = max(0.0, (now - last_ok).total_seconds())
        body["poll"].update(ok=age <= limit, last_success_at=_iso(last_ok), age_seconds=round(age, 1))
    body["last_poll"] = _run(summary["poll"]["last"])
    body["last_send"] = _run(summary["send"]["last"])
    for server in ("imap", "smtp"):
        seen = summary[server]
        body[server] = dict(answered=seen["answered"], at=_iso(seen["at"]), error=seen["error"])
    healthy = body["database"]["ok"] and body["poll"]["ok"]
    body["status"] = "ok" if healthy else "failing"
    return healthy, body
