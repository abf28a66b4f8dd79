"""Prometheus metrics for /metrics, read from the database at scrape time (a fresh registry each call)."""
from __future__ import annotations

from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from . import servicelog, stats
from .models import Event, as_utc

PREFIX = "consultant"
# Moves that are counted for ever from the audit trail (which retention keeps).
TOTALS = {
    "sent": ("replies_sent", "Answers accepted by the SMTP server."),
    "failed": ("send_failures", "Answers that went to failed (SMTP 5xx, gave up, unknown outcome)."),
    "quarantined": ("quarantined", "Questions parked in quarantine."),
    "rejected": ("rejected", "Questions rejected by a reviewer."),
}


def _gauge(name: str, doc: str, value: float | None, labels: dict | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels or {}))
    if value is not None:
        family.add_metric(list((labels or {}).values()), float(value))
    return family


class DatabaseCollector:
    """Collects everything in a few indexed queries; an unreachable database gives database_up 0."""

    def __init__(self, engine: Engine, now: datetime):
        self.engine, self.now = engine, as_utc(now)

    def collect(self):
        try:
            with Session(self.engine.execution_options(readonly=True)) as session:
                families = list(self._families(session))
        except SQLAlchemyError:
            yield _gauge("database_up", "1 if the database answered this scrape.", 0)
            return
        yield _gauge("database_up", "1 if the database answered this scrape.", 1)
        yield from families

    def _families(self, session: Session):
        per_status = GaugeMetricFamily(f"{PREFIX}_questions", "Questions by status.", labels=["status"])
        for status, n in stats.counts(session).items():
            per_status.add_metric([status], n)
        yield per_status
        waiting = stats.waiting(session, self.now)
        yield _gauge("waiting_questions", "Questions drafted or in review.", waiting["count"])
        oldest = waiting["oldest"]
        yield _gauge("oldest_waiting_seconds", "Age of the oldest question waiting for review (0 if none).",
                     oldest["age_seconds"] if oldest else 0)
        found = dict(session.execute(select(Event.to_status, func.count())
                                     .where(Event.to_status.in_(list(TOTALS))).group_by(Event.to_status)).all())
        for status, (name, doc) in TOTALS.items():
            counter = CounterMetricFamily(f"{PREFIX}_{name}", doc)
            counter.add_metric([], int(found.get(status, 0)))
            yield counter
        summary = servicelog.summary(session)
        for job in ("poll", "send", "sweep"):
            last, success = summary[job]["last"], summary[job]["last_success_at"]
            yield _gauge(f"last_{job}_timestamp_seconds", f"When the last {job} run finished (Unix time).",
                         last["finished_at"].timestamp() if last else None)
            yield _gauge(f"last_{job}_success", f"1 if the last {job} run succeeded.",
                         (1 if last["ok"] else 0) if last else None)
            yield _gauge(f"last_successful_{job}_timestamp_seconds",
                         f"When a {job} run last succeeded (Unix time).", success.timestamp() if success else None)
        for server in ("imap", "smtp"):
            answered = summary[server]["answered"]
            yield _gauge(f"{server}_up", f"1 if the {server.upper()} server answered the last run that needed it.",
                         None if answered is None else int(answered))


def render(engine: Engine, now: datetime) -> tuple[bytes, str]:
    """(body, content type) in the Prometheus text format. Never raises for a database outage."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(engine, now))
    return generate_latest(registry), CONTENT_TYPE_LATEST

