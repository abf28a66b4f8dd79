"""The rate limits count by when mail arrived at the server (IMAP INTERNALDATE), not by when we
stored it: a backlog fetched at once after an outage is answered, a flood inside it is still held."""
from datetime import datetime, timedelta, timezone

from imapclient import IMAPClient
from sqlalchemy import select
from sqlmodel import Session

from consultant.models import Question
from consultant.worker import Worker
from support import make_settings, question_bytes

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def append(imap_user, raws_at: list[tuple[bytes, datetime]]) -> None:
    """APPEND each message with the arrival time the server is to record for it."""
    client = IMAPClient(imap_user.host, imap_user.port, ssl=False, timeout=30)
    client.login(imap_user.username, imap_user.password)
    try:
        for raw, at in raws_at:
            client.append("INBOX", raw, msg_time=at)
    finally:
        client.logout()


def poll(engine, settings) -> None:
    worker = Worker(engine, settings)
    try:
        result = worker.poll_once()
    finally:
        worker.close()
    assert result.imap_ok and result.db_ok


def stored(engine) -> list[Question]:
    with Session(engine) as session:
        return session.execute(select(Question).order_by(Question.uid)).scalars().all()


def test_each_question_keeps_the_time_the_server_received_it(engine, db_url, imap_user):
    times = [NOW - timedelta(days=2, minutes=7), NOW - timedelta(hours=3), NOW - timedelta(seconds=30)]
    append(imap_user, [(question_bytes(n), at) for n, at in enumerate(times)])
    poll(engine, make_settings(db_url, imap_user))
    rows = stored(engine)
    assert [r.arrived_at.astimezone(timezone.utc) for r in rows] == times
    assert all(r.received_at.astimezone(timezone.utc) >= NOW for r in rows)  # stored just now
    assert [r.status for r in rows] == ["drafted"] * 3


def test_a_backlog_is_answered_and_only_the_flood_inside_it_is_held(engine, db_url, imap_user):
    # Eight questions that came in 90 minutes apart while we were down, then five in one hour.
    spread = [NOW - timedelta(hours=14) + timedelta(minutes=90 * n) for n in range(8)]
    flood = [NOW - timedelta(minutes=60 - 10 * n) for n in range(5)]
    raws = [question_bytes(n, sender=f"coder{n}@clinic{n}.test") for n in range(13)]
    append(imap_user, list(zip(raws, spread + flood)))
    # All thirteen are fetched and screened in one go, as after an outage.
    poll(engine, make_settings(db_url, imap_user, screen={"max_per_hour": 3}))
    rows = stored(engine)
    assert [r.status for r in rows[:8]] == ["drafted"] * 8  # never more than one in an hour
    # Of the flood, three fit the hour; the fourth and fifth each have three before them in it.
    assert [r.status for r in rows[8:]] == ["drafted"] * 3 + ["quarantined"] * 2
    assert all("3 questions from all senders in the last hour" in r.reason for r in rows[11:])
