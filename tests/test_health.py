"""Health: healthy only while the database answers and the last good poll is recent; the body
says what the last poll and send did and whether IMAP and SMTP answered."""
import json
from datetime import timedelta

from consultant import health
from consultant.db import make_engine
from consultant.models import utcnow
from consultant.servicelog import ServiceLog
from servers import free_port
from support import make_settings

EVERY = 10  # seconds between polls in these tests


def settings(db_url):
    return make_settings(db_url, worker={"poll_every": EVERY})


def test_a_worker_that_never_polled_is_not_healthy(engine, db_url):
    ok, body = health.check(engine, settings(db_url), utcnow())
    assert not ok and body["status"] == "failing"
    assert body["database"] == {"ok": True}
    assert body["poll"]["last_success_at"] is None and body["last_poll"] is None


def test_a_poll_within_three_intervals_is_healthy_and_one_older_is_not(engine, db_url):
    polled = utcnow()
    ServiceLog(engine).record("poll", polled, ok=True, server_ok=True, counts={"stored": 1}, finished_at=polled)
    limit = health.POLL_INTERVALS * EVERY
    ok, body = health.check(engine, settings(db_url), polled + timedelta(seconds=limit - 1))
    assert ok and body["status"] == "ok"
    assert body["poll"]["age_seconds"] == limit - 1 and body["poll"]["max_age_seconds"] == limit
    assert body["imap"]["answered"] is True
    ok, body = health.check(engine, settings(db_url), polled + timedelta(seconds=limit + 1))
    assert not ok and body["poll"]["ok"] is False and body["database"]["ok"] is True


def test_failed_polls_since_the_last_good_one_are_shown_and_do_not_count_as_success(engine, db_url):
    log = ServiceLog(engine)
    good = utcnow() - timedelta(seconds=10 * EVERY)
    log.record("poll", good, ok=True, server_ok=True, finished_at=good)
    log.record("poll", utcnow(), ok=False, server_ok=False, error="IMAP server unreachable: refused")
    log.record("send", utcnow(), ok=True, server_ok=True, counts={"sent": 2})
    ok, body = health.check(engine, settings(db_url), utcnow())
    assert not ok
    assert body["poll"]["last_success_at"] == good.isoformat()
    assert (body["last_poll"]["ok"], body["last_poll"]["error"]) == (False, "IMAP server unreachable: refused")
    assert body["imap"]["answered"] is False and body["smtp"]["answered"] is True
    assert body["last_send"]["counts"] == {"sent": 2}


def test_an_unreachable_database_is_unhealthy_without_details_or_an_exception():
    url = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/consultant"
    engine = make_engine(url)
    try:
        ok, body = health.check(engine, settings(url), utcnow())
    finally:
        engine.dispose()
    assert not ok and body["database"] == {"ok": False, "error": "unreachable"}
    text = json.dumps(body)
    assert "hunter2" not in text and "127.0.0.1" not in text


def test_the_body_is_plain_json(engine, db_url):
    ServiceLog(engine).record("poll", utcnow(), ok=True, server_ok=True)
    ok, body = health.check(engine, settings(db_url), utcnow())
    assert ok and json.loads(json.dumps(body)) == body
