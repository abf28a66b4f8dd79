"""Operator figures on SQLite and PostgreSQL: counts, the oldest waiting question, activity per hour
and day, review-time percentiles, reviewer shares and the paged problem lists."""
import itertools
import json
import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlmodel import Session

from consultant import review, stats
from consultant.models import Event, Question, Reply, utcnow
from consultant.states import Status
from support import drafted, make_settings, query_plans, question_bytes, recorded

NOW = datetime(2026, 3, 10, 14, 25, 30, tzinfo=timezone.utc)  # stats take the clock as an argument
_keys = itertools.count(1)


def new_question(session, status, received_at=NOW, **fields) -> int:
    q = Question(status=str(status), dedupe_key=f"<s{next(_keys)}@t>", received_at=received_at,
                 updated_at=received_at, **fields)
    session.add(q)
    session.flush()
    return q.id


def add_event(session, qid, at, action, frm, to, actor="worker", reason=None) -> None:
    session.add(Event(question_id=qid, at=at, actor=actor, action=action, from_status=frm, to_status=to,
                      reason=reason))


def nearest_rank(values, p):
    ordered = sorted(values)
    return float(ordered[math.ceil(p / 100 * len(ordered)) - 1])


def test_counts_name_every_status_and_count_each_question_once(engine):
    with Session(engine) as session:
        made = {Status.DRAFTED: 3, Status.SENT: 2, Status.QUARANTINED: 1}
        for status, n in made.items():
            for _ in range(n):
                new_question(session, status)
        session.commit()
        counts = stats.counts(session)
    assert set(counts) == {s.value for s in Status}
    assert counts == {s.value: made.get(s, 0) for s in Status}


def test_the_oldest_waiting_question_is_the_first_to_arrive_and_its_age_runs_to_now(engine):
    with Session(engine) as session:
        new_question(session, Status.SENT, NOW - timedelta(days=3))  # older, but nobody waits for it
        first = new_question(session, Status.IN_REVIEW, NOW - timedelta(hours=5), claimed_by="alice")
        new_question(session, Status.DRAFTED, NOW - timedelta(hours=1))
        session.commit()
        waiting = stats.waiting(session, NOW)
    assert waiting["count"] == 2
    assert (waiting["oldest"]["id"], waiting["oldest"]["claimed_by"]) == (first, "alice")
    assert waiting["oldest"]["age_seconds"] == pytest.approx(5 * 3600)


def test_nothing_waiting_means_no_oldest_question(engine):
    with Session(engine) as session:
        new_question(session, Status.SENT)
        session.commit()
        assert stats.waiting(session, NOW) == {"count": 0, "oldest": None}


def _moves(session, at):
    """One question's drafted, approved and sent moves at `at`, and moves that must not count."""
    qid = new_question(session, Status.SENT, at)
    add_event(session, qid, at, "transition", None, "received")
    add_event(session, qid, at, "transition", "parsed", "drafted")
    add_event(session, qid, at, "release", "in_review", "drafted")  # a released claim is no new draft
    add_event(session, qid, at, "approve", "in_review", "approved", "alice", "approved as drafted")
    add_event(session, qid, at, "send", "sending", "approved")  # a retry after a 4xx is no approval
    add_event(session, qid, at, "retry", "failed", "approved", "olga")
    add_event(session, qid, at, "send", "sending", "sent")


@pytest.mark.parametrize("bucket", ["hour", "day"])
def test_activity_counts_each_move_in_its_bucket_and_leaves_out_older_ones(engine, bucket):
    size = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    n = 24 if bucket == "hour" else 30
    current = NOW.replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        current = current.replace(hour=0)
    window_start = current - (n - 1) * size
    times = [NOW, current, current - size + timedelta(seconds=1), window_start, window_start,
             window_start - timedelta(seconds=1), NOW - (n + 2) * size]
    with Session(engine) as session:
        for at in times:
            _moves(session, at)
        session.commit()
        got = stats.activity(session, NOW, bucket)
    expected = [0] * n
    for at in times:
        if at >= window_start:
            expected[(at - window_start) // size] += 1
    assert got["series"] == {"drafted": expected, "approved": expected, "sent": expected}
    assert got["starts"][0] == window_start and got["starts"][-1] == current
    assert len(got["labels"]) == n and got["totals"]["sent"] == sum(expected)


def test_review_times_are_nearest_rank_percentiles_from_claim_and_from_draft(engine):
    claim_to_decision, draft_to_decision = [], []
    with Session(engine) as session:
        for i in range(1, 21):
            qid = new_question(session, Status.SENT)
            decided = NOW - timedelta(hours=i)
            wait, took = 600 * (i % 7), 60 * i
            claimed = decided - timedelta(seconds=took)
            add_event(session, qid, claimed - timedelta(seconds=wait), "transition", "parsed", "drafted")
            add_event(session, qid, claimed, "claim", "drafted", "in_review", "alice")
            action, to = ("approve", "approved") if i % 4 else ("reject", "rejected")
            add_event(session, qid, decided, action, "in_review", to, "alice", "why")
            claim_to_decision.append(took)
            draft_to_decision.append(wait + took)
        # Claimed by bob, released, claimed again by carol: her claim starts the clock.
        qid = new_question(session, Status.APPROVED)
        add_event(session, qid, NOW - timedelta(hours=3), "transition", "parsed", "drafted")
        add_event(session, qid, NOW - timedelta(hours=2), "claim", "drafted", "in_review", "bob")
        add_event(session, qid, NOW - timedelta(hours=2), "release", "in_review", "drafted", "bob")
        add_event(session, qid, NOW - timedelta(seconds=45), "claim", "drafted", "in_review", "carol")
        add_event(session, qid, NOW, "approve", "in_review", "approved", "carol", "approved as drafted")
        claim_to_decision.append(45)
        draft_to_decision.append(3 * 3600)
        # Decided before the window: not counted.
        old = new_question(session, Status.SENT)
        add_event(session, old, NOW - timedelta(days=40), "claim", "drafted", "in_review", "alice")
        add_event(session, old, NOW - timedelta(days=31), "approve", "in_review", "approved", "alice")
        session.commit()
        times = stats.review_times(session, NOW, days=30)
    for name, values in (("claim_to_decision", claim_to_decision), ("drafted_to_decision", draft_to_decision)):
        assert times[name] == {"n": len(values), **{f"p{p}": nearest_rank(values, p) for p in (50, 90, 95)}}


def test_review_times_without_decisions_are_empty(engine):
    with Session(engine) as session:
        assert stats.review_times(session, NOW)["claim_to_decision"] == {"n": 0, "p50": None, "p90": None,
                                                                         "p95": None}


def test_reviewer_figures_come_from_the_real_review_actions(engine, db_url):
    settings = make_settings(db_url)
    ids = [drafted(engine, settings, question_bytes(n)) for n in range(1, 8)]
    with Session(engine) as session:
        review.approve(session, ids[0], "alice", 30)
        review.approve(session, ids[1], "alice", 30)
        review.approve(session, ids[2], "alice", 30, text="Yes, 62303 and 72128 may be billed together.")
        review.reject(session, ids[3], "alice", "not a coding question", 30)
        review.reject(session, ids[4], "bob", "duplicate", 30)
        review.reject(session, ids[5], "bob", "duplicate", 30)
        review.reject(session, ids[6], "bob", "not a coding question", 30)
        session.commit()
        figures = stats.reviewers(session, utcnow())
        top_one = stats.reviewers(session, utcnow(), top_reasons=1)
    alice, bob = figures
    assert (alice["reviewer"], alice["handled"], alice["approved_unchanged"], alice["approved_edited"],
            alice["rejected"]) == ("alice", 4, 2, 1, 1)
    assert (alice["share_unchanged"], alice["share_edited"], alice["share_rejected"]) == (0.5, 0.25, 0.25)
    assert alice["reasons"] == [{"reason": "not a coding question", "count": 1}]
    assert (bob["handled"], bob["share_rejected"], bob["share_unchanged"]) == (3, 1.0, 0.0)
    assert bob["reasons"] == [{"reason": "duplicate", "count": 2}, {"reason": "not a coding question", "count": 1}]
    assert top_one[1]["reasons"] == [{"reason": "duplicate", "count": 2}]


def test_the_problem_lists_page_by_id_without_gaps_or_repeats(engine):
    with Session(engine) as session:
        parked = [new_question(session, Status.QUARANTINED, stage="parse", reason=f"unreadable {i}")
                  for i in range(5)]
        new_question(session, Status.DRAFTED)
        failed = new_question(session, Status.FAILED, reason="SMTP 550: no such user")
        session.add(Reply(question_id=failed, kind="answer", to_addr="a@b.test", subject="s", text="t", html="h",
                          message_id="<f@t>", last_error="SMTP 550: no such user", send_attempts=2))
        session.commit()
        seen, after = [], None
        while True:
            page = stats.quarantined(session, after=after, limit=2)
            seen += [item["id"] for item in page["items"]]
            assert len(page["items"]) <= 2
            if page["next_after"] is None:
                break
            after = page["next_after"]
        newest = stats.quarantined(session, limit=3, newest_first=True)
        [failure] = stats.failed(session)["items"]
    assert seen == parked
    assert [item["id"] for item in newest["items"]] == parked[::-1][:3] and newest["next_after"] == parked[2]
    assert (failure["id"], failure["last_error"], failure["send_attempts"]) == (failed, "SMTP 550: no such user", 2)
    with pytest.raises(ValueError):
        stats.problems(session, Status.DRAFTED)


def test_the_overview_gathers_everything_and_is_json_ready(engine):
    with Session(engine) as session:
        _moves(session, NOW - timedelta(minutes=5))
        new_question(session, Status.DRAFTED, NOW - timedelta(minutes=30))
        new_question(session, Status.QUARANTINED, stage="screen", reason="no sender")
        session.commit()
        data = stats.overview(session, NOW)
    assert data["total"] == sum(data["counts"].values()) == 3
    assert data["waiting"]["count"] == 1 and data["hourly"]["totals"]["sent"] == 1
    assert [item["reason"] for item in data["quarantined"]["items"]] == ["no sender"]
    assert data["service"]["poll"]["last"] is None
    for svg in data["charts"].values():
        root = ET.fromstring(svg)
        assert root.get("role") == "img"
    json.dumps({k: v for k, v in data.items() if k != "charts"}, default=str)


def test_no_query_behind_the_overview_reads_the_whole_event_table(sqlite_engine):
    """EXPLAIN QUERY PLAN for every statement the overview runs: the audit trail is the largest
    table, and a full scan of it would make the operator page slow with 100,000 questions."""
    with recorded(sqlite_engine) as seen, Session(sqlite_engine) as session:
        _moves(session, NOW)
        session.commit()
        stats.overview(session, NOW)
    plans = query_plans(sqlite_engine, [(sql, params) for sql, params in seen
                                        if sql.lstrip().upper().startswith(("SELECT", "WITH"))])
    assert any("ix_event_to_status_at" in line for line in plans)
    full_scans = [line for line in plans if re.search(r"SCAN (event|event_\d+)\b(?! USING)", line)]
    assert full_scans == []
    # Where a review started is looked up among the question's own events, not all drafts before it.
    lookups = [line for line in plans if re.match(r"SEARCH event_\d+ ", line)]
    assert lookups and all("(question_id=?)" in line for line in lookups)


def test_the_stats_command_prints_the_overview_and_json_without_a_traceback(sqlite_url, tmp_path):
    fixtures = Path(__file__).resolve().parent.parent / "mailbox_fixtures"
    env = dict(os.environ, CONSULTANT_DATABASE__URL=sqlite_url, CONSULTANT_PATHS__VAR=str(tmp_path))

    def consultant(*args):
        proc = subprocess.run([sys.executable, "-m", "consultant", *args], env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
        return proc.stdout

    consultant("inject", str(fixtures / "01-spine-myelogram-ct.eml"), str(fixtures / "47-quarantined-no-from.eml"))
    consultant("poll", "--once", "--no-fetch")
    data = json.loads(consultant("stats", "--json"))
    assert (data["counts"]["drafted"], data["counts"]["quarantined"], data["waiting"]["count"]) == (1, 1, 1)
    assert data["service"]["poll"]["last"]["ok"] is True and "charts" not in data
    text = consultant("stats")
    assert "waiting for review: 1" in text and "quarantined" in text and "last poll:" in text
