"""Tables for questions, their raw mail, replies, audit events and IMAP checkpoints."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Column, Index, LargeBinary, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """A timestamp in UTC; a naive one (as SQLite gives back outside the ORM) is taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Question(SQLModel, table=True):
    """One inbound message and what the pipeline made of it; status is owned by states.py."""

    __tablename__ = "question"
    __table_args__ = (
        UniqueConstraint("account", "mailbox", "uidvalidity", "uid", name="uq_question_imap_key"),
        Index("ix_question_status_id", "status", "id"),
        # The screen's rate limits count by arrival: per sender, and those that passed per status.
        Index("ix_question_sender_arrived", "from_addr", "arrived_at"),
        Index("ix_question_status_arrived", "status", "arrived_at"),
        # What retention may still purge: finished questions not purged yet, oldest first.
        Index("ix_question_unpurged", "status", "updated_at", sqlite_where=text("purged_at IS NULL"),
              postgresql_where=text("purged_at IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(max_length=20)
    stage: str | None = Field(default=None, max_length=20)  # where a quarantined item came from
    reason: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = 0
    dedupe_key: str = Field(max_length=300, unique=True)  # Message-ID, or sha256 of the raw bytes
    message_id: str | None = Field(default=None, max_length=300)
    account: str | None = Field(default=None, max_length=200)
    mailbox: str | None = Field(default=None, max_length=200)
    uidvalidity: int | None = None
    uid: int | None = None
    size: int = 0
    body_downloaded: bool = True
    received_at: datetime = Field(default_factory=utcnow, index=True)  # when we stored it
    # When the mail server got it (IMAP INTERNALDATE), else when we stored it: a backlog fetched
    # after an outage keeps the times its mail really came in, which the rate limits count by.
    arrived_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    # Filled by screen and parse.
    from_addr: str | None = Field(default=None, max_length=320)
    from_name: str | None = Field(default=None, max_length=200)
    subject: str | None = Field(default=None, sa_column=Column(Text))
    sent_date: datetime | None = None
    body_source: str | None = Field(default=None, max_length=20)
    new_text: str | None = Field(default=None, sa_column=Column(Text))
    quoted_text: str | None = Field(default=None, sa_column=Column(Text))
    signature: str | None = Field(default=None, sa_column=Column(Text))
    attachments: list | None = Field(default=None, sa_column=Column(JSON))
    defects: list | None = Field(default=None, sa_column=Column(JSON))
    codes: list | None = Field(default=None, sa_column=Column(JSON))
    modifiers: list | None = Field(default=None, sa_column=Column(JSON))
    # Filled by draft: checks, suggestions and the source of each fact, for the reviewer.
    analysis: dict | None = Field(default=None, sa_column=Column(JSON))
    # Review (claims are leases: claimed_until in the past means free).
    claimed_by: str | None = Field(default=None, max_length=100)
    claimed_until: datetime | None = None
    # Processing (screen, parse, draft): the worker whose batch holds it, and until when. Several
    # workers on one PostgreSQL skip each other's live claims (see process.Processor.claim).
    processing_by: str | None = Field(default=None, max_length=100)
    processing_until: datetime | None = None
    # Retention (retention.py): when the raw mail and the bodies were purged; the row stays.
    purged_at: datetime | None = None


class QuestionCode(SQLModel, table=True):
    """A code found in a question, one row per code, so the queue can filter by code with an index
    (the Question.codes JSON keeps the positions and modifiers). Written by parse."""

    __tablename__ = "question_code"
    __table_args__ = (Index("ix_question_code_code", "code", "question_id"),)

    question_id: int = Field(foreign_key="question.id", primary_key=True)
    system: str = Field(primary_key=True, max_length=12)
    code: str = Field(primary_key=True, max_length=10)
    quoted: bool = False  # only in the quoted history, not asked


class RawMessage(SQLModel, table=True):
    """The bytes as fetched, kept apart so queue queries stay light."""

    __tablename__ = "raw_message"

    question_id: int = Field(foreign_key="question.id", primary_key=True)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Reply(SQLModel, table=True):
    """An outgoing mail: the drafted answer (edits kept beside it) or a notice of rejection.

    Threading headers and the Message-ID are fixed when the row is made, so a resend is the same
    message. The lease fields make sure two workers never send the same reply.
    """

    __tablename__ = "reply"
    __table_args__ = (UniqueConstraint("question_id", "purpose", name="uq_reply_question_purpose"),
                      Index("ix_reply_due", "sent_at", "next_attempt_at"))

    id: int | None = Field(default=None, primary_key=True)
    question_id: int = Field(foreign_key="question.id")
    purpose: str = Field(default="answer", max_length=10)  # answer | notice
    kind: str = Field(max_length=20)
    to_addr: str = Field(max_length=320)
    subject: str = Field(sa_column=Column(Text, nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    html: str = Field(sa_column=Column(Text, nullable=False))
    message_id: str = Field(max_length=300, unique=True)
    in_reply_to: str | None = Field(default=None, max_length=300)
    references: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    edited_text: str | None = Field(default=None, sa_column=Column(Text))
    edited_by: str | None = Field(default=None, max_length=100)
    edited_at: datetime | None = None
    # Sending: a lease so that two workers never send the same reply, and backoff state.
    to_send: bool = False  # a notice waiting to go out (answers follow the question's status)
    failed_at: datetime | None = None
    send_attempts: int = 0
    next_attempt_at: datetime | None = None
    first_attempt_at: datetime | None = None
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = None
    sent_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))


class Event(SQLModel, table=True):
    """Audit trail: one row per state change or review action, with who did it."""

    __tablename__ = "event"

    id: int | None = Field(default=None, primary_key=True)
    question_id: int = Field(foreign_key="question.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=30)
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str | None = Field(default=None, max_length=20)
    reason: str | None = Field(default=None, sa_column=Column(Text))


class Checkpoint(SQLModel, table=True):
    """The highest UID stored per (account, mailbox) under one UIDVALIDITY."""

    __tablename__ = "checkpoint"

    account: str = Field(primary_key=True, max_length=200)
    mailbox: str = Field(primary_key=True, max_length=200)
    uidvalidity: int
    last_uid: int = 0
    updated_at: datetime = Field(default_factory=utcnow)
