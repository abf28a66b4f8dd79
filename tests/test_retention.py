"""Retention: the sweep purges the mail and bodies of old finished questions (never in-flight or
young ones), keeps the rows and the audit trail, records each purge, and prunes old login records."""
import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from mailbuild import attachment, mail, multipart, text
from sqlalchemy import func, select, update
from sqlmodel import Session
from support import drafted, question_bytes, smtp_section
from websupport import add_people, signed_in, web_settings

from consultant import operator, queries, review
from consultant.accounts import LoginEvent
from consultant.db import make_engine
from consultant.models import Event, Question, QuestionCode, RawMessage, Reply, utcnow
from consultant.process import Processor
from consultant.send import Sender
from consultant.sweep import Sweeper

DAYS = 30
BODY = "Patient Ann Example had 62303 with 72128; is modifier 59 needed? Dx M54.16"
AUTOREPLY = (b"From: Out Of Office <away@ridgeview-clinic.test>\r\nTo: ask@caseconsultant.test\r\n"
             b"Subject: Automatic reply: I am away\r\nAuto-Submitted: auto-replied\r\n"
             b"Message-ID: <away1@ridgeview-clinic.test>\r\n\r\nI am away until Monday.\r\n")

WITH_SCAN = mail(multipart("mixed", text(BODY), attachment("application/pdf", b"%PDF-1.4 scan", "ann_example_mri.pdf")),
                 Message_ID="<scan1@ridgeview-clinic.test>")


@pytest.fixture
def settings(db_url, smtp):
    return web_settings(db_url, smtp=smtp_section(smtp), privacy={"keep_mail_days": DAYS})


def _act(engine, qid, action, *args, **kwargs):
    with Session(engine) as session:
        review.claim(session, qid, "bob", 30)
        action(session, qid, "bob", *args, **kwargs)
        session.commit()


def _reject(engine, settings, qid, notify):
    _act(engine, qid, review.reject, "not a coding question", 30, notify=notify,
         templates=settings.templates_dir(), service_name="CaseConsultant", domain="caseconsultant.test")


def _age(engine, days, *ids):
    with Session(engine) as session:
        session.execute(update(Question).where(Question.id.in_(ids))
                        .values(updated_at=utcnow() - timedelta(days=days)))
        session.commit()


@pytest.fixture
def world(engine, settings):
    """One question per case, keyed by what it is; all but `young` last changed 40 days ago."""
    names = ["sent", "young", "rejected", "notice_waiting", "drafted", "approved"]
    with Session(engine) as session:
        q = {name: operator.inject(session, question_bytes(n, BODY), "test", f"{n}.eml")
             for n, name in enumerate(names, 1) if name != "rejected"}
        q["rejected"] = operator.inject(session, WITH_SCAN, "test", "scan.eml")
        q["ignored"] = operator.inject(session, AUTOREPLY, "test", "away.eml")
        q["quarantined"] = operator.inject(session, b"no header here, just words", "test", "bad.eml")
        session.commit()
    with Processor(engine, settings) as processor:
        processor.run_until_done()
    for name in ("sent", "young"):
        _act(engine, q[name], review.approve, 30)
    Sender(engine, settings, owner="sender").run_once()
    _act(engine, q["approved"], review.approve, 30)  # approved after the send run: still waiting
    _reject(engine, settings, q["rejected"], notify=False)
    _reject(engine, settings, q["notice_waiting"], notify=True)  # the notice is not sent yet
    _age(engine, 40, *[qid for name, qid in q.items() if name != "young"])
    with Session(engine) as session:
        statuses = {name: session.get(Question, qid).status for name, qid in q.items()}
    assert statuses == dict(sent="sent", young="sent", rejected="rejected", notice_waiting="rejected",
                            drafted="drafted", approved="approved", ignored="ignored", quarantined="quarantined")
    return q


def _snapshot(engine, qid) -> dict:
    with Session(engine) as session:
        d = queries.detail(session, qid)
        d["raw"] = session.get(RawMessage, qid) is not None
        d["indexed"] = sorted(session.execute(
            select(QuestionCode.code).where(QuestionCode.question_id == qid)).scalars())
        d["purged_at"] = session.get(Question, qid).purged_at
        return d


def test_old_finished_questions_lose_mail_and_bodies_and_keep_the_row_and_the_trail(engine, settings, world):
    before = {name: _snapshot(engine, qid) for name, qid in world.items()}
    counts = Sweeper(engine, settings).run_once()
    assert counts.purged == 3
    after = {name: _snapshot(engine, qid) for name, qid in world.items()}
    for name in ("sent", "rejected", "ignored"):
        old, new = before[name], after[name]
        assert old["raw"] and not new["raw"]
        assert new["purged_at"] is not None
        assert (new["subject"], new["new_text"], new["quoted_text"], new["signature"]) == (None,) * 4
        # Status, dates, sender, codes found and the whole trail stay; the purge is one more event.
        for key in ("status", "received_at", "from_addr", "message_id", "codes", "reason", "indexed"):
            assert new[key] == old[key], key
        assert new["events"][:-1] == old["events"]
        assert (new["events"][-1]["actor"], new["events"][-1]["action"], new["events"][-1]["reason"]) == (
            "retention", "purged", f"body purged after {DAYS} days by the retention policy")
        assert all(a["filename"] is None for a in new["attachments"])
        assert [a["content_type"] for a in new["attachments"]] == [a["content_type"] for a in old["attachments"]]
        if new["reply"]:
            assert (new["reply"]["text"], new["reply"]["html"], new["reply"]["subject"]) == ("", "", "")
            assert new["reply"]["sent_at"] == old["reply"]["sent_at"]
    assert after["sent"]["indexed"] == ["62303", "72128", "M54.16"]
    assert [a["filename"] for a in before["rejected"]["attachments"]] == ["ann_example_mri.pdf"]
    for name in ("young", "notice_waiting", "drafted", "approved", "quarantined"):
        assert after[name] == before[name], name


def test_the_purge_is_idempotent_off_by_default_and_a_redelivered_message_is_still_known(
        engine, db_url, smtp, settings, world):
    keep = web_settings(db_url, smtp=smtp_section(smtp), privacy={"keep_mail_days": 0})
    assert Sweeper(engine, keep).run_once().purged == 0
    sweeper = Sweeper(engine, settings)
    assert sweeper.run_once().purged == 3
    assert sweeper.run_once().purged == 0
    with Session(engine) as session:
        purges = session.execute(select(func.count(Event.id)).where(Event.action == "purged")).scalar_one()
        assert purges == 3
        assert operator.inject(session, question_bytes(1, BODY), "test", "again.eml") is None
    # A rejection waits until its notice is out, then goes too.
    Sender(engine, settings, owner="sender").run_once()
    with Session(engine) as session:
        notice = queries.reply(session, world["notice_waiting"], "notice")
        assert notice.sent_at is not None
    _age(engine, 40, world["notice_waiting"])
    assert sweeper.run_once().purged == 1
    with Session(engine) as session:
        assert session.get(Reply, notice.id).text == ""
        assert session.get(RawMessage, world["notice_waiting"]) is None


def test_login_records_older_than_keep_logins_days_are_deleted(engine, settings):
    now = utcnow()
    with Session(engine) as session:
        session.add_all([LoginEvent(at=now - timedelta(days=days), name=f"u{days}", address="127.0.0.1",
                                    outcome="ok") for days in (1, 89, 91, 400)])
        session.commit()
    counts = Sweeper(engine, settings).run_once()
    assert counts.logins_pruned == 2
    with Session(engine) as session:
        assert sorted(session.execute(select(LoginEvent.name)).scalars()) == ["u1", "u89"]


def test_the_desk_shows_a_purged_question_without_its_body(engine, settings, world):
    Sweeper(engine, settings).run_once()
    add_people(engine)
    alice = signed_in(settings, engine, "alice")
    for name in ("sent", "ignored", "rejected"):
        page = alice.get(f"/questions/{world[name]}")
        assert page.status_code == 200
        assert f"Body purged after {DAYS} days by the retention policy" in page.text
        assert "Ann Example" not in page.text and "myelogram question" not in page.text
        assert "ann_example_mri" not in page.text
    shown = subprocess.run([sys.executable, "-m", "consultant", "show", str(world["rejected"])], capture_output=True,
                           text=True, timeout=120, env=dict(os.environ, CONSULTANT_DATABASE__URL=settings.database.url))
    assert shown.returncode == 0 and "application/pdf" in shown.stdout, shown.stdout + shown.stderr
    assert "Ann Example" not in shown.stdout and "Traceback" not in shown.stderr
    assert "Ann Example" in alice.get(f"/questions/{world['young']}").text


def _restored(url: str, qid: int) -> dict:
    """What the README's restore check shows: `consultant stats` and `show` on the restored copy."""
    env = dict(os.environ, CONSULTANT_DATABASE__URL=url)
    stats, show = (subprocess.run([sys.executable, "-m", "consultant", *args], env=env, capture_output=True,
                                  text=True, timeout=120)
                   for args in (["stats", "--json"], ["show", str(qid), "--json"]))
    assert stats.returncode == 0 and show.returncode == 0, stats.stderr + show.stderr
    return json.loads(show.stdout)


def test_a_sqlite_backup_taken_while_the_database_is_in_use_restores_everything(sqlite_url, sqlite_engine, tmp_path):
    settings = web_settings(sqlite_url)
    qid = drafted(sqlite_engine, settings, question_bytes(1, BODY))
    path, backup = sqlite_url.removeprefix("sqlite:///"), tmp_path / "backup.db"
    with Session(sqlite_engine) as session:  # a reader holds a snapshot while the backup runs
        session.execute(select(func.count(Question.id))).scalar_one()
        done = subprocess.run(["sqlite3", path, f".backup {backup}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    check = subprocess.run(["sqlite3", str(backup), "PRAGMA integrity_check"], capture_output=True, text=True)
    assert check.stdout.strip() == "ok"
    restored = _restored(f"sqlite:///{backup}", qid)
    assert (restored["status"], restored["new_text"]) == ("drafted", BODY)
    assert [e["to_status"] for e in restored["events"]] == ["received", "parsed", "drafted"]


def test_a_postgres_dump_restores_everything_into_a_new_database(pg_url, pg_cluster, tmp_path):
    engine = make_engine(pg_url)
    try:
        qid = drafted(engine, web_settings(pg_url), question_bytes(1, BODY))
    finally:
        engine.dispose()
    dump, target = tmp_path / "consultant.dump", pg_cluster.create_database()
    for program, *args in (("pg_dump", "-Fc", "-d", pg_url.replace("+psycopg", ""), "-f", str(dump)),
                           ("pg_restore", "--no-owner", "-d", target.replace("+psycopg", ""), str(dump))):
        done = subprocess.run([str(pg_cluster.bin_dir / program), *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    restored = _restored(target, qid)
    assert (restored["status"], restored["new_text"]) == ("drafted", BODY)
    assert restored["reply"]["text"] and len(restored["events"]) == 3
