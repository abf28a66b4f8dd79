"""Hostile and broken mail: whatever the bytes, no stage raises past its boundary, and every message
ends drafted, ignored or quarantined with a reason and a stage.

Strategies are in hostile.py. Runs are derandomized, so a failure replays; the number of inputs
tried is printed at the end of the module (the `tally` fixture counts each input fed).
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select
from sqlmodel import Session

from consultant import operator
from consultant.codeindex import CodeIndex
from consultant.extract import find_codes
from consultant.mimebounds import Refused, header_block, header_block_size
from consultant.models import Question
from consultant.process import Processor
from consultant.reading import Reading, UnreadableMessage, decode_header_value, parse_message, read_message
from consultant.screen import headers_of, screen
from hostile import ENDED, encoded_word_flood, huge_header, messages, mime_entity, tally, tried  # noqa: F401  (tally is a fixture)
from support import make_settings

pytestmark = pytest.mark.usefixtures("tally")

INDEX = CodeIndex(cpt=["99213", "99214", "62303", "72128"], hcpcs=["J1100"], icd=["M54.16"])
# Small limits, so that small examples reach every refusal as well as the happy paths.
TIGHT = dict(max_parts=30, max_depth=6, max_header_bytes=6000, max_lines=4000)
ENDINGS = {"drafted", "ignored", "quarantined"}


def _settings(db_url: str = "sqlite:///:memory:", **limits):
    return make_settings(db_url, limits=dict(TIGHT, **limits),
                         screen=dict(max_per_sender_per_hour=0, max_per_hour=0))


SETTINGS = _settings()


def stages(raw: bytes, tight: dict = TIGHT) -> str:
    """Screen, parse and find codes the way the Processor does; the outcome's name. Only the
    documented refusals (Refused, UnreadableMessage) may come out; anything else fails the test."""
    tried("stages", raw)
    try:
        head = header_block(raw, tight["max_header_bytes"])
    except Refused as refused:
        assert "limits.max_header_bytes" in refused.reason
        return "quarantined"
    verdict = screen(headers_of(head), SETTINGS)
    assert verdict.action in ("pass", "ignore", "quarantine")
    assert verdict.action == "pass" or verdict.reason
    try:
        reading = read_message(raw, **tight)
    except UnreadableMessage as unreadable:
        assert unreadable.reason and "Traceback" not in unreadable.reason
        return "quarantined"
    _check_reading(reading)
    findings = find_codes(reading.new_text, INDEX, reading.quoted_text)
    for code in findings.codes:
        for start, end in code.spans:
            assert 0 <= start < end <= len(reading.new_text)
    return "read"


def _check_reading(reading: Reading) -> None:
    assert reading.body_source in ("text/plain", "text/html", "none")
    for text in (reading.body_text, reading.new_text, reading.quoted_text, reading.signature,
                 reading.subject, reading.from_name):
        assert "\r" not in text and "\x00" not in text
    assert len(reading.subject) <= 1000 and len(reading.from_name) <= 200
    assert len(reading.body_text) <= 1_000_000
    assert all(isinstance(d, str) and d for d in reading.defects)
    if reading.from_addr is not None:
        assert "@" in reading.from_addr and not any(c in reading.from_addr for c in " <>\r\n")


@settings(max_examples=1000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(messages)
def test_the_stages_take_any_hostile_message(raw):
    outcome = stages(raw)
    assert outcome in ("read", "quarantined")
    ENDED[f"stages: {outcome}"] += 1


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(encoded_word_flood(), encoded_word_flood(), huge_header(), mime_entity())
def test_encoded_word_floods_and_big_headers_under_the_default_limits(subject, sender, big, body):
    """The tight limits above refuse most floods at the header limit; these reach the decoders."""
    raw = (b"From: " + sender[:3000].encode("utf-8", "surrogateescape") + b" <jane@clinic.test>\r\n"
           b"Subject: " + subject.encode("utf-8", "surrogateescape") + b"\r\n" + big + body)
    outcome = stages(raw, dict(TIGHT, max_header_bytes=64 * 1024, max_lines=1_000_000))
    ENDED[f"floods: {outcome}"] += 1
    decoded = decode_header_value(subject)
    assert "\r" not in decoded and "\n" not in decoded and "\x00" not in decoded


def test_the_pipeline_ends_every_hostile_message_drafted_ignored_or_quarantined(sqlite_engine):
    """Through inject and Processor.run_until_done on SQLite with the code data seeded."""
    settings_ = _settings(str(sqlite_engine.url))
    seen: dict[str, int] = {}
    with Processor(sqlite_engine, settings_) as processor:

        @settings(max_examples=100, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.function_scoped_fixture])
        @given(st.lists(messages, min_size=1, max_size=6))
        def run(batch):
            ids = []
            with Session(sqlite_engine) as session:
                for raw in batch:
                    qid = operator.inject(session, raw, "test", "hostile.eml")
                    if qid is not None:  # None: the same bytes were stored before
                        tried("pipeline", raw)
                        ids.append(qid)
                session.commit()
            processor.run_until_done()
            with Session(sqlite_engine) as session:
                rows = session.execute(select(Question).where(Question.id.in_(ids))).scalars().all()
                for question in rows:
                    assert question.status in ENDINGS, (question.id, question.status)
                    seen[question.status] = seen.get(question.status, 0) + 1
                    ENDED[f"pipeline: {question.status} {question.stage or ''}".rstrip()] += 1
                    if question.status == "quarantined":
                        assert question.reason and question.stage
                        assert not question.reason.startswith("internal error"), question.reason
                assert len(rows) == len(ids)

        run()
    # The strategies reach every ending, so the property is not vacuous.
    assert set(seen) == ENDINGS, seen


@pytest.mark.parametrize(("limit", "overrides", "raw"), [
    ("limits.max_header_bytes", {}, b"From: a@clinic.test\r\n" + b"X-Pad: " + b"p" * 7000
     + b"\r\n\r\nIs 99213 right?\r\n"),
    ("limits.max_header_bytes", {}, b"From: a@clinic.test\r\nSubject: q\r\n"
     + b"Received: from x\r\n" * 400 + b"\r\nIs 99213 right?\r\n"),
    ("limits.max_codes", {}, b"From: a@clinic.test\r\n\r\n" + b" ".join(b"%d" % n for n in range(20000, 20300))),
    ("limits.max_lines", {}, b"From: a@clinic.test\r\n\r\n" + b"99213\n" * 5000),
    ("limits.max_parts", {}, b"From: a@clinic.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
     + b"--b\r\n\r\nx\r\n" * 40 + b"--b--\r\n"),
    ("limits.max_depth", {}, b"From: a@clinic.test\r\n"
     + b"".join(b"Content-Type: multipart/mixed; boundary=n%d\r\n\r\n--n%d\r\n" % (i, i) for i in range(9))
     + b"\r\n99213\r\n"),
])
def test_each_limit_quarantines_at_parse_naming_its_setting(sqlite_engine, limit, overrides, raw):
    settings_ = _settings(str(sqlite_engine.url), **overrides)
    with Session(sqlite_engine) as session:
        qid = operator.inject(session, raw, "test", "limit.eml")
        session.commit()
    with Processor(sqlite_engine, settings_) as processor:
        processor.run_until_done()
    with Session(sqlite_engine) as session:
        question = session.get(Question, qid)
        assert (question.status, question.stage) == ("quarantined", "parse")
        assert limit in question.reason


def test_a_bigger_header_limit_lets_the_same_message_through(sqlite_engine):
    raw = (b"From: Jane <jane@clinic.test>\r\nSubject: q\r\nX-Pad: " + b"p" * 7000
           + b"\r\n\r\nIs 99213 right?\r\n")
    with Session(sqlite_engine) as session:
        qid = operator.inject(session, raw, "test", "limit.eml")
        session.commit()
    with Processor(sqlite_engine, _settings(str(sqlite_engine.url), max_header_bytes=8000)) as processor:
        processor.run_until_done()
    with Session(sqlite_engine) as session:
        assert session.get(Question, qid).status == "drafted"


@pytest.mark.parametrize(("raw", "size"), [
    (b"From: a\r\nSubject: b\r\n\r\nbody", 21),
    (b"From: a\nSubject: b\n\nbody", 19),
    (b"From: a\r\n folded\r\nnot a header line\r\n", 18),  # the parser ends headers there too
    (b"From: a", 7),  # only headers, no line end
    (b"\r\nbody", 0),
    (b"From: a\r\n" + b"X: " + b"y" * 100, None),  # a header line running past the limit
    (b"From: a\r\n" * 12, None),
    (b"From: a\r\n" * 11 + b"\r\n", 99),
])
def test_the_header_block_is_measured_as_the_parser_reads_it(raw, size):
    assert header_block_size(raw, 100) == size
    if size is not None:
        assert headers_of(raw[:size]).items() == headers_of(raw).items()


def test_header_limit_message_names_the_setting():
    with pytest.raises(UnreadableMessage) as caught:
        read_message(b"From: a@clinic.test\r\nSubject: " + b"=?utf-8?q?a?= " * 10_000 + b"\r\n\r\nhi\r\n")
    assert caught.value.reason == "the header block is bigger than 65536 bytes (limits.max_header_bytes)"


@pytest.mark.parametrize("raw", [
    b"From: a@clinic.test\r\nSubject: " + b"=?x-bogus?b?!!!!?= =?utf-7?q?+AGEAYg-?= " * 100 + b"\r\n\r\nq\r\n",
    b"From: =?utf-8?b?PT91dGYtOD9xPzk5MjEzPz0=?= <a@clinic.test>\r\n\r\nq\r\n",
    b"From: a@clinic.test\r\nContent-Type: text/plain; charset=\"utf-7\"\r\n\r\n+AGEAYg-99213 +ZZZ-\r\n",
    b"From: a@clinic.test\r\nContent-Type: text/plain; charset=base64\r\n\r\nOTkyMTM=\r\n",
])
def test_bad_charsets_and_encoded_words_are_read_not_raised(raw):
    reading = read_message(raw)
    _check_reading(reading)
    assert stages(raw) == "read"


@settings(max_examples=1000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(messages)
def test_the_screen_finds_the_same_header_fields_in_the_parse_the_reading_shares(raw):
    """consultant.finish screens the header fields of the tree that reading parses (one parse, not
    two) unless bytes before the headers were dropped: those must be the fields a parse of the
    header block alone finds."""
    tried("shared parse", raw)
    try:
        block = header_block(raw, TIGHT["max_header_bytes"])
        parsed = parse_message(raw, **TIGHT)
    except (Refused, UnreadableMessage):
        return  # refused at the header block (quarantined before the screen), or screened on the block
    if parsed.trimmed:
        return  # screened on the block
    assert list(parsed.msg.raw_items()) == list(headers_of(block).raw_items())
