"""Every synthetic question in mailbox_fixtures/ reaches the status, codes and reply kind it expects."""
import tomllib
from pathlib import Path

import pytest
from sqlmodel import Session

from consultant import operator, queries
from consultant.models import Question
from consultant.process import Processor
from support import make_settings

FIXTURES = Path(__file__).resolve().parent.parent / "mailbox_fixtures"
CASES = sorted(FIXTURES.glob("*.eml"))


def test_there_are_at_least_thirty_fixtures_each_with_an_expectation():
    assert len(CASES) >= 30
    assert all(p.with_suffix(".expect.toml").exists() for p in CASES)


def run_through(engine, settings, path: Path) -> int:
    with Session(engine) as session:
        qid = operator.inject(session, path.read_bytes(), "test", path.name)
        session.commit()
    with Processor(engine, settings) as processor:
        processor.run_until_done()
    return qid


def check(engine, qid: int, expect: dict) -> None:
    with Session(engine) as session:
        q = session.get(Question, qid)
        reply = queries.reply(session, qid)
    assert q.status == expect["status"], q.reason
    if "reason" in expect:
        assert expect["reason"].lower() in (q.reason or "").lower()
    if expect["status"] != "drafted":
        assert reply is None
        return
    assert reply.kind == expect["kind"]
    codes = q.codes or []
    asked = {c["code"]: c for c in codes if not c["quoted"]}
    assert sorted(asked) == sorted(expect.get("asked", []))
    assert sorted(c["code"] for c in codes if c["quoted"]) == sorted(expect.get("quoted", []))
    assert sorted(c for c, v in asked.items() if not v["known"]) == sorted(expect.get("unknown", []))
    for code, modifiers in expect.get("modifiers", {}).items():
        assert asked[code]["modifiers"] == modifiers, code
    for code, units in expect.get("units", {}).items():
        assert asked[code]["units"] == units, code
    assert sorted(q.modifiers or []) == sorted(expect.get("mentioned_modifiers", []))
    for code in expect.get("asked", []):
        if code not in expect.get("unknown", []):
            assert code in reply.text and code in reply.html
    assert reply.in_reply_to == q.message_id and reply.subject.lower().startswith("re:")


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_fixture_reaches_its_expected_outcome(sqlite_engine, sqlite_url, path):
    expect = tomllib.loads(path.with_suffix(".expect.toml").read_text())
    qid = run_through(sqlite_engine, make_settings(sqlite_url), path)
    check(sqlite_engine, qid, expect)


@pytest.mark.postgres
def test_every_fixture_reaches_its_outcome_on_postgresql_too(pg_url):
    from consultant.db import make_engine

    engine = make_engine(pg_url)
    try:
        settings = make_settings(pg_url)
        for path in CASES:
            qid = run_through(engine, settings, path)
            check(engine, qid, tomllib.loads(path.with_suffix(".expect.toml").read_text()))
    finally:
        engine.dispose()
