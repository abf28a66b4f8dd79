"""Checks on the codes of one question: NCCI pairs on the date of service, MUE units, fee-schedule
modifiers, deleted codes, and what was not checked because a data set is not loaded."""
import random
from datetime import date

import pytest
from sqlmodel import Session

from consultant import checks
from consultant.codetables import FeeRule, Mue, PtpEdit, Release
from consultant.extract import find_codes
from consultant.lookup import Lookup


@pytest.fixture
def session(engine):
    with Session(engine) as session:
        yield session


def load(session, kind, rows, name=None):
    release = Release(kind=kind, name=name or f"sample {kind}")
    session.add(release)
    session.flush()
    for row in rows:
        row.release_id = release.id
        session.add(row)
    session.commit()
    return release


def run(session, text, received=date(2026, 3, 1)):
    lookup = Lookup(session)
    findings = find_codes(text, lookup.index)
    asked = findings.asked()
    return checks.run(session, asked, [lookup.facts(f.system, f.code) for f in asked], text, received)


def kinds(result):
    return [(w.kind, w.codes) for w in result.warnings]


@pytest.mark.parametrize("text,expected", [
    ("DOS 03/14/2025", date(2025, 3, 14)),
    ("date of service: 3/4/25", date(2025, 3, 4)),
    ("Date of service 2025-03-14", date(2025, 3, 14)),
    ("DOS was 12/31/2024", date(2024, 12, 31)),
    ("DOS 02/31/2025 then DOS 03/01/2025", date(2025, 3, 1)),
])
def test_the_date_of_service_is_read_from_the_question(text, expected):
    assert checks.date_of_service(text, date(2026, 1, 1)) == (expected, True)


def test_without_a_date_of_service_the_day_it_arrived_is_used():
    assert checks.date_of_service("seen 03/14/2025", date(2026, 1, 1)) == (date(2026, 1, 1), False)


def test_the_quick_rejection_reads_every_text_as_the_pattern_alone_does():
    """date_of_service skips texts without "dos" or "date" (case-folded) before trying its pattern:
    over random texts, including letters that match case-insensitively (long s, Kelvin sign,
    dotless i), it gives what the pattern alone gives."""
    rnd = random.Random(5)
    bits = ["DOS", "dos", "DoS", "DO\u017f", "d\u00f6s", "date of service", "DATE  OF\tSERVICE", "service date",
            "Service\nDate", "dat\u0117", "\u212a", "\u0131", " ", ": ", "was ", "is ", "-", "=", "03/14/2025",
            "3/4/25", "02/31/2025", "2025-03-14", "12/31/2024", "x", "99213", "\u00df"]
    default, found = date(2026, 1, 1), 0
    for _ in range(3000):
        text = "".join(rnd.choice(bits) for _ in range(rnd.randrange(1, 9)))
        assert checks.date_of_service(text, default) == checks._first_date(text, default), text
        found += checks._first_date(text, default)[1]
    assert found > 30  # some texts do give dates


def test_a_pair_in_force_on_the_date_of_service_gives_a_bundling_warning(session):
    load(session, "ncci-ptp", [PtpEdit(column1="62303", column2="72128", effective=date(2024, 1, 1),
                                       modifier_indicator="1", rationale="Misuse of column two code")],
         name="NCCI PTP practitioner 2025Q1")
    result = run(session, "Can I bill 62303 with 72128 with modifier 59, DOS 03/14/2025?")
    [warning] = result.warnings
    assert (warning.kind, warning.codes, warning.source) == ("pair", ["62303", "72128"], "NCCI PTP practitioner 2025Q1")
    assert "72128 is bundled into 62303" in warning.message and "indicator 1" in warning.message
    assert "59" in warning.message and warning.detail["indicator"] == "1"


def test_a_pair_outside_its_dates_gives_no_warning(session):
    load(session, "ncci-ptp", [
        PtpEdit(column1="62303", column2="72128", effective=date(2024, 1, 1), deletion=date(2025, 1, 1),
                modifier_indicator="0"),
        PtpEdit(column1="99213", column2="96372", effective=date(2025, 7, 1), modifier_indicator="0")])
    assert run(session, "62303 with 72128, DOS 03/14/2025").warnings == []
    assert run(session, "62303 with 72128, DOS 12/14/2024").warnings[0].detail["indicator"] == "0"
    assert run(session, "99213 and 96372, DOS 03/14/2025").warnings == []
    assert kinds(run(session, "99213 and 96372, DOS 08/14/2025")) == [("pair", ["99213", "96372"])]


@pytest.mark.parametrize("indicator,phrase", [("0", "no modifier changes that"),
                                              ("9", "not applicable")])
def test_each_modifier_indicator_is_explained(session, indicator, phrase):
    load(session, "ncci-ptp", [PtpEdit(column1="20610", column2="20553", modifier_indicator=indicator)])
    assert phrase in run(session, "20610 and 20553").warnings[0].message


def test_the_newest_ptp_release_is_the_one_in_force(session):
    load(session, "ncci-ptp", [PtpEdit(column1="62303", column2="72128", modifier_indicator="0")], name="2024Q4")
    load(session, "ncci-ptp", [PtpEdit(column1="20610", column2="20553", modifier_indicator="1")], name="2025Q1")
    assert run(session, "62303 with 72128").warnings == []
    assert run(session, "20610 with 20553").warnings[0].source == "2025Q1"


def test_units_over_the_mue_are_flagged_and_units_within_it_are_not(session):
    load(session, "mue", [Mue(code="J1100", units=10, adjudication="3 Date of Service Edit: Clinical",
                              rationale="Clinical: Data")], name="MUE practitioner 2025Q1")
    [warning] = run(session, "J1100 x12 with 96372").warnings
    assert warning.kind == "units" and "12 units of J1100" in warning.message and "10" in warning.message
    assert "per day" in warning.message and warning.source == "MUE practitioner 2025Q1"
    assert run(session, "J1100 x8 with 96372").warnings == []


def test_a_modifier_the_fee_schedule_does_not_allow_is_flagged(session):
    load(session, "pfs-rvu", [FeeRule(code="64490", bilat_surg="1"), FeeRule(code="20610", bilat_surg="0"),
                              FeeRule(code="69210", bilat_surg="2")], name="PFS RVU 2025")
    assert run(session, "64490-50").warnings == []
    [warning] = run(session, "20610-50").warnings
    assert (warning.kind, warning.codes) == ("modifier", ["20610"])
    assert "bilateral payment does not apply" in warning.message
    assert "already bilateral" in run(session, "69210-50").warnings[0].message


def test_a_deleted_code_is_flagged_with_its_end_date(session):
    [warning] = run(session, "Can we still use 99201?").warnings
    assert warning.kind == "status" and "99201 was deleted after December 31, 2020" in warning.message
    assert "starter" in warning.source


def test_missing_data_sets_are_named_for_the_reviewer(session):
    result = run(session, "62303 with 72128")
    assert len(result.missing) == 3 and any("NCCI PTP" in m for m in result.missing)
    load(session, "mue", [Mue(code="J1100", units=10)])
    assert len(run(session, "62303 with 72128").missing) == 2
