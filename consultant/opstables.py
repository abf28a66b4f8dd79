"""Tables for the operator view: one row per worker run, and the index the activity charts read."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from .models import Event, utcnow


class ServiceRun(SQLModel, table=True):
    """What one poll, send or sweep run did, and whether its server (IMAP or SMTP) answered.

    A run that did nothing and ended like the row before it extends that row (`runs` counts them,
    `finished_at` moves on) instead of adding one: the send job runs every few seconds. `error`
    is a short, redacted sentence; no message content and no full address is ever stored here.
    """

    __tablename__ = "service_run"
    __table_args__ = (Index("ix_service_run_job_finished", "job", "finished_at"),)

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=10)  # poll | send | sweep
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime = Field(default_factory=utcnow)
    ok: bool = True
    server_ok: bool | None = None  # None: the run did not need its server
    idle: bool = False  # nothing to do and nothing went wrong
    runs: int = 1
    counts: dict | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = Field(default=None, sa_column=Column(Text))


# Activity charts, review times and reviewer figures select events by the status they moved to
# within a time window; without this they would read the whole audit trail. from_status and action
# ride along so the activity counts (a first draft, not a released claim) never touch the table.
_event = Event.__table__.c
EVENT_STATUS_AT = Index("ix_event_to_status_at", _event.to_status, _event.at, _event.from_status, _event.action)
