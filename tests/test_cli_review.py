"""Review and sending commands as a reviewer and an operator run them: real processes, a real
database and a real SMTP server, no tracebacks.

alice and bob are reviewers; the operator is whoever runs a command without --as.
"""
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import update

from consultant.db import make_engine
from consultant.models import Question, Reply, utcnow
from servers import free_port

FIXTURES = Path(__file__).resolve().parent.parent / "mailbox_fixtures"
SPINE = FIXTURES / "01-spine-myelogram-ct.eml"


def consultant(*args, env, code=0):
    proc = subprocess.run([sys.executable, "-m", "consultant", *args], env=dict(os.environ, **env),
                          capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output and "internal error" not in output, output
    assert proc.returncode == code, output
    return proc


def show(qid, env) -> dict:
    return json.loads(consultant("show", str(qid), "--json", env=env).stdout)


def trail(qid, env) -> list[tuple[str, str]]:
    return [(e["actor"], e["action"]) for e in show(qid, env)["events"]]


def questions(tmp_path, n: int) -> list[str]:
    """n distinct copies of the spine question (each its own Message-ID and sender)."""
    raw = SPINE.read_bytes()
    paths = []
    for i in range(1, n + 1):
        path = tmp_path / f"q{i}.eml"
        path.write_bytes(raw.replace(b"Message-ID: <", f"Message-ID: <cli{i}.".encode(), 1))
        paths.append(str(path))
    return paths


def set_column(url, qid, **values):
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(update(Question).where(Question.id == qid).values(**values))
    finally:
        engine.dispose()


@pytest.fixture
def env(sqlite_url, tmp_path, smtp):
    return {"CONSULTANT_DATABASE__URL": sqlite_url, "CONSULTANT_PATHS__VAR": str(tmp_path),
            "CONSULTANT_SMTP__HOST": smtp.host, "CONSULTANT_SMTP__PORT": str(smtp.port),
            "CONSULTANT_SMTP__SECURITY": "plain"}


@pytest.fixture
def drafted_ids(env, tmp_path):
    out = consultant("inject", *questions(tmp_path, 3), env=env).stdout
    assert out.count(": drafted") == 3
    return [1, 2, 3]


def test_claim_says_until_when_and_a_second_reviewer_is_refused(env, drafted_ids):
    out = consultant("claim", "1", "--as", "alice", env=env).stdout
    assert out.startswith("question 1 claimed by alice until ") and out.rstrip().endswith(" UTC")
    detail = show(1, env)
    assert (detail["status"], detail["claimed_by"]) == ("in_review", "alice")
    assert detail["claimed_until"][11:16] in out
    refused = consultant("claim", "1", "--as", "bob", env=env, code=1)
    assert "claimed by alice" in refused.stderr
    assert trail(1, env)[-1] == ("alice", "claim")


def test_release_refuses_someone_elses_live_claim_unless_forced_and_records_the_force(env, drafted_ids):
    consultant("claim", "1", "--as", "alice", env=env)
    for who in ([], ["--as", "bob"]):  # the operator by default, or another reviewer
        refused = consultant("release", "1", *who, env=env, code=1)
        assert "claimed by alice" in refused.stderr and "--force" in refused.stderr
    assert show(1, env)["status"] == "in_review"
    out = consultant("release", "1", "--force", env=env).stdout
    assert "released (forced: it was claimed by alice)" in out
    detail = show(1, env)
    assert (detail["status"], detail["claimed_by"]) == ("drafted", None)
    forced = detail["events"][-1]
    assert (forced["actor"], forced["action"]) == ("operator", "force-release")
    assert "forced release" in forced["reason"] and "alice" in forced["reason"]
    consultant("claim", "1", "--as", "alice", env=env)
    assert "forced" not in consultant("release", "1", "--as", "alice", env=env).stdout
    assert trail(1, env)[-1] == ("alice", "release")


def test_an_expired_claim_is_released_without_force(env, sqlite_url, drafted_ids):
    consultant("claim", "1", "--as", "alice", env=env)
    set_column(sqlite_url, 1, claimed_until=utcnow() - timedelta(minutes=1))
    consultant("release", "1", env=env)
    assert trail(1, env)[-1] == ("operator", "release")


def test_approve_as_drafted_and_with_an_edit_then_send_once_delivers_both(env, drafted_ids, smtp, tmp_path):
    out = consultant("approve", "1", "--as", "alice", env=env).stdout
    assert "question 1 approved by alice;" in out
    edit = tmp_path / "answer.txt"
    edit.write_text("Yes: 62303 covers the myelogram; report 72128 for the CT.\n", encoding="utf-8")
    out = consultant("approve", "2", "--as", "bob", "--body-file", str(edit), env=env).stdout
    assert "question 2 approved by bob with edits" in out
    second = show(2, env)
    assert (second["status"], second["reply"]["edited_by"]) == ("approved", "bob")
    assert ("bob", "edit") in [(e["actor"], e["action"]) for e in second["events"]]
    out = consultant("send", "--once", env=env).stdout
    assert out.strip() == "sent 2, retrying 0, failed 0"
    received = {m.message["In-Reply-To"]: m.message.get_body(("plain",)).get_content().replace("\r\n", "\n")
                for m in smtp.wait_for(2)}
    by_id = {qid: show(qid, env) for qid in (1, 2)}
    as_drafted, edited = (received[by_id[qid]["reply"]["in_reply_to"]] for qid in (1, 2))
    assert edited.strip() == "Yes: 62303 covers the myelogram; report 72128 for the CT."
    assert as_drafted.strip() == by_id[1]["reply"]["text"].replace("\r\n", "\n").strip()
    assert [by_id[qid]["status"] for qid in (1, 2)] == ["sent", "sent"]
    assert ("alice", "approve") in [(e["actor"], e["action"]) for e in by_id[1]["events"]]
    assert consultant("send", "--once", env=env).stdout.strip() == "sent 0, retrying 0, failed 0"


def test_approve_with_an_unreadable_body_file_says_so(env, drafted_ids, tmp_path):
    refused = consultant("approve", "1", "--as", "alice", "--body-file", str(tmp_path / "missing.txt"),
                         env=env, code=1)
    assert "cannot read" in refused.stderr
    assert show(1, env)["status"] == "drafted"


def test_reject_with_a_reason_and_notify_sends_the_asker_a_notice(env, drafted_ids, smtp):
    out = consultant("reject", "3", "--as", "alice", "--reason", "needs the operative note", "--notify",
                     env=env).stdout
    assert "question 3 rejected by alice; a notice will be sent" in out
    detail = show(3, env)
    assert (detail["status"], detail["reason"]) == ("rejected", "needs the operative note")
    assert detail["notice"]["kind"] == "rejected"
    consultant("send", "--once", env=env)
    [notice] = smtp.wait_for(1)
    assert "not able to answer" in notice.message.get_body(("plain",)).get_content()
    assert ("alice", "reject") in trail(3, env)
    refused = consultant("reject", "2", "--as", "alice", "--reason", "  ", env=env, code=1)
    assert "reason is required" in refused.stderr


def test_retry_puts_a_failed_reply_back_to_approved_and_it_is_sent(env, drafted_ids, smtp):
    consultant("approve", "1", "--as", "alice", env=env)
    smtp.fail_next("RCPT", 550, "No such user here")
    assert consultant("send", "--once", env=env).stdout.strip() == "sent 0, retrying 0, failed 1"
    failed = show(1, env)
    assert failed["status"] == "failed" and "550" in failed["reason"]
    out = consultant("retry", "1", env=env).stdout
    assert "question 1: answer queued to send again" in out
    retried = show(1, env)["events"][-1]
    assert (retried["actor"], retried["action"], retried["from_status"], retried["to_status"]) == (
        "operator", "retry", "failed", "approved")
    assert consultant("send", "--once", env=env).stdout.strip() == "sent 1, retrying 0, failed 0"
    assert show(1, env)["status"] == "sent" and len(smtp.wait_for(1)) == 1
    refused = consultant("retry", "1", env=env, code=1)
    assert "only failed replies" in refused.stderr


def test_sweep_once_releases_a_stale_claim(env, sqlite_url, drafted_ids):
    consultant("claim", "1", "--as", "alice", env=env)
    consultant("claim", "2", "--as", "bob", env=env)
    set_column(sqlite_url, 1, claimed_until=utcnow() - timedelta(minutes=5))
    out = consultant("sweep", "--once", env=env).stdout
    assert out.startswith("released 1 claims;")
    assert [show(qid, env)["status"] for qid in (1, 2)] == ["drafted", "in_review"]
    assert trail(1, env)[-1] == ("sweep", "release")


def test_sweep_once_exits_4_when_the_sent_folder_cannot_be_reached(env, sqlite_url, drafted_ids):
    consultant("approve", "1", "--as", "alice", env=env)
    set_column(sqlite_url, 1, status="sending")  # as a sender that died mid-send leaves it
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(update(Reply).values(lease_owner="gone:1", lease_until=utcnow() - timedelta(minutes=1)))
    engine.dispose()
    imap_down = dict(env, CONSULTANT_SMTP__SENT_FOLDER="Sent", CONSULTANT_IMAP__SECURITY="plain",
                     CONSULTANT_IMAP__PORT=str(free_port()), CONSULTANT_IMAP__USERNAME="desk",
                     CONSULTANT_IMAP__PASSWORD="secret")
    proc = consultant("sweep", "--once", env=imap_down, code=4)
    assert proc.stdout.rstrip().endswith("; IMAP server (Sent folder) unreachable")
    assert show(1, env)["status"] == "sending"  # not guessed at: left for when the folder answers


def test_send_once_exits_4_with_one_line_when_smtp_is_unreachable(env, drafted_ids):
    consultant("approve", "1", "--as", "alice", env=env)
    down = dict(env, CONSULTANT_SMTP__PORT=str(free_port()))
    proc = consultant("send", "--once", env=down, code=4)
    assert proc.stdout.splitlines() == ["sent 0, retrying 0, failed 0; SMTP server unreachable"]
    detail = show(1, env)
    assert (detail["status"], detail["reply"]["send_attempts"]) == ("approved", 0)
    assert consultant("send", "--once", env=env).stdout.strip() == "sent 1, retrying 0, failed 0"
    stats = json.loads(consultant("stats", "--json", env=env).stdout)
    assert stats["service"]["send"]["last"]["ok"] and stats["service"]["smtp"]["answered"] is True
    assert stats["service"]["send"]["last"]["counts"]["sent"] == 1  # the operator sees both runs
    assert stats["service"]["send"]["last_success_at"] is not None


def test_queue_json_gives_the_oldest_question_still_waiting_for_review(env, sqlite_url, drafted_ids):
    assert json.loads(consultant("queue", "--json", env=env).stdout)["oldest_waiting"] is not None
    arrived = {qid: datetime(2026, 1, 4 + qid, 8 + qid, 30, tzinfo=timezone.utc) for qid in (1, 2, 3)}
    for qid, when in arrived.items():
        set_column(sqlite_url, qid, received_at=when)
    consultant("approve", "1", "--as", "alice", env=env)  # the oldest no longer waits
    consultant("claim", "3", "--as", "bob", env=env)  # in review still counts as waiting
    listing = json.loads(consultant("queue", "--json", env=env).stdout)
    assert datetime.fromisoformat(listing["oldest_waiting"]).replace(tzinfo=timezone.utc) == arrived[2]
    assert [listing["counts"][s] for s in ("approved", "drafted", "in_review")] == [1, 1, 1]
    consultant("approve", "2", "--as", "alice", env=env)
    consultant("approve", "3", "--as", "bob", env=env)
    assert json.loads(consultant("queue", "--json", env=env).stdout)["oldest_waiting"] is None
