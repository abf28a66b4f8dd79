"""Identifier masking: what it masks, what coders ask about that it keeps, and, with
privacy.redact_identifiers on, what the reviewer and the draft see."""
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlmodel import Session

from consultant import queries
from consultant.extract import find_codes
from consultant.models import Question
from consultant.redact import MASK, mask, spans
from extractsupport import INDEX
from support import drafted
from websupport import add_people, signed_in, web_settings

MASKED = [
    ("SSN 123-45-6789.", "123-45-6789"),
    ("her number is 123 45 6789 on file", "123 45 6789"),
    ("MRN: 00123456", "00123456"),
    ("mrn 00123456 seen today", "00123456"),
    ("member ID W123456789", "W123456789"),
    ("Member #: W123456789", "W123456789"),
    ("subscriber no. 778899", "778899"),
    ("policy number is ABC12345", "ABC12345"),
    ("acct# 12-3456", "12-3456"),
    ("Medicaid # 987654321X", "987654321X"),
    ("Medicare ID 1EG4-TE5-MK73", "1EG4-TE5-MK73"),
    ("Patient ID: 5551234", "5551234"),
    ("medical record number 4451-22", "4451-22"),
    ("DOB 01/02/1960", "01/02/1960"),
    ("D.O.B.: 1/2/60", "1/2/60"),
    ("date of birth: March 3, 1955", "March 3, 1955"),
    ("born on 4 July 1950", "4 July 1950"),
    ("birthdate 1960-01-02", "1960-01-02"),
    ("call (404) 555-0199 today", "(404) 555-0199"),
    ("call 404-555-0199 x 12", "404-555-0199 x 12"),
    ("cell 404.555.0199", "404.555.0199"),
    ("reach me at +1 404 555 0199", "+1 404 555 0199"),
    ("1-800-555-0199 is the payer line", "1-800-555-0199"),
    ("fax 4045550199", "4045550199"),
]

KEPT = [
    "Can I bill 62303 with 72128, and do I need modifier 59? Dx M54.16",
    "99213-25 and 20610-RT, J1100 x2 units",
    "DOS 03/14/2025, billed $1,250.00 for 62302-62305",
    "Atlanta GA 30303-1234 and Springfield, IL 62703",
    "Medicare 99213 rules for a new patient, account 2025 totals",
    "the member had 99214 and 0042T; policy says 3074F",
    "ICD-10 T36.0X1A, S72.001A and Z3A.38 with E11.9",
    "NPI 1234567890 and claim #62303-01",
]


@pytest.mark.parametrize("text, value", MASKED)
def test_each_identifier_is_masked_letter_for_letter_and_keeps_its_punctuation(text, value):
    out = mask(text)
    assert len(out) == len(text)
    assert value not in out
    start = text.index(value)
    masked_value = out[start:start + len(value)]
    assert all(c == MASK for c, o in zip(masked_value, value) if o.isalnum())
    assert all(c == o for c, o in zip(masked_value, value) if not o.isalnum())
    assert out[:start] == text[:start] and out[start + len(value):] == text[start + len(value):]


@pytest.mark.parametrize("text", KEPT)
def test_codes_dates_of_service_amounts_and_zips_are_not_identifiers(text):
    assert spans(text) == []
    assert mask(text) == text


def test_a_protected_span_is_never_masked():
    text = "MRN 99213 and MRN 00123456"
    assert mask(text) == "MRN ***** and MRN ********"
    assert mask(text, protect=[(4, 9)]) == "MRN 99213 and MRN ********"


# Pieces a question is made of: the codes coders ask about, with modifiers and units, the words
# around them, and the identifiers and look-alikes that sit next to them in real mail.
CODES = st.sampled_from(["62303", "72128", "99213", "99214-25", "20610-RT", "J1100 x2", "3074F", "0042T",
                         "M54.16", "Dx M54.16", "E11.9", "62302-62305", "97110 x 3 units", "99213 with modifier 25",
                         "T36.0X1A", "A4550", "G0439-GA", "99203 59"])
IDENTIFIERS = st.sampled_from(["SSN 123-45-6789", "123 45 6789", "MRN: 00123456", "member ID W123456789",
                               "Medicaid # 987654321X", "DOB 01/02/1960", "date of birth March 3, 1955",
                               "born on 01-02-1960", "(404) 555-0199", "404-555-0199 x 12", "fax 4045550199",
                               "policy no. A12345", "acct# 12-3456", "+1 404 555 0199"])
CONTEXT = st.sampled_from(["DOS 03/14/2025", "$125.00", "Atlanta GA 30303", "ZIP 30303-1234", "NPI 1234567890",
                           "units", "and", "with", "or", "for", "the patient", "Medicare", "member", "account",
                           "policy", "-", ",", ".", ":", "#", "x2", "25", "59", "RT", "on", "no.", "ID", "\n"])
SEPARATORS = st.sampled_from([" ", "  ", ", ", "; ", "\n", " - ", ": "])
PIECES = st.lists(st.one_of(CODES, IDENTIFIERS, CONTEXT), min_size=1, max_size=12)


def _text(pieces: list[str], seps: list[str]) -> str:
    return "".join(p + seps[i % len(seps)] for i, p in enumerate(pieces))


@hsettings(max_examples=300, deadline=None)
@given(PIECES, st.lists(SEPARATORS, min_size=1, max_size=4))
def test_masking_never_changes_a_code_the_finder_finds(pieces, seps):
    text = _text(pieces, seps)
    masked = mask(text)
    assert len(masked) == len(text)
    assert find_codes(masked, INDEX) == find_codes(text, INDEX)
    assert find_codes("", INDEX, masked) == find_codes("", INDEX, text)


@hsettings(max_examples=200, deadline=None)
@given(PIECES, st.lists(SEPARATORS, min_size=1, max_size=4))
def test_no_identifier_digit_survives_between_codes(pieces, seps):
    text = _text(pieces, seps)
    masked = mask(text)
    for start, end, _ in spans(text):
        assert not any(c.isdigit() for c in masked[start:end])
    for value in ("123-45-6789", "00123456", "W123456789", "01/02/1960", "555-0199", "4045550199"):
        assert value not in masked


QUESTION = (
    b"From: Jane Doe <jane.doe@ridgeview.test>\r\nTo: ask@caseconsultant.test\r\n"
    b"Subject: 99213 for MRN 00123456\r\nMessage-ID: <red1@ridgeview.test>\r\n\r\n"
    b"Patient DOB 01/02/1960, MRN: 00123456, member ID W123456789, call me at (404) 555-0199.\r\n"
    b"DOS 03/14/2025: can I bill 99213-25 with 20610 and J1100 x2? Dx M54.16\r\n\r\n"
    b"Jane Doe, CPC\r\nRidgeview Clinic, fax 404-555-0123\r\n\r\n"
    b"On Mon, Mar 2, 2026 Ask wrote:\r\n> SSN 123-45-6789 was in the last one, 99214.\r\n")
SECRETS = ("00123456", "W123456789", "01/02/1960", "555-0199", "555-0123", "123-45-6789")


def _stored(engine, redact: bool, db_url):
    settings = web_settings(db_url, privacy={"redact_identifiers": redact})
    qid = drafted(engine, settings, QUESTION)
    with Session(engine) as session:
        return settings, qid, queries.detail(session, qid)


def test_with_redaction_on_the_reviewer_and_the_draft_see_masked_text_with_codes_in_place(engine, db_url):
    settings, qid, d = _stored(engine, True, db_url)
    assert d["status"] == "drafted"
    seen = " ".join([d["subject"], d["new_text"], d["quoted_text"] or "", d["signature"] or "",
                     d["reply"]["text"], d["reply"]["html"], d["reply"]["subject"]])
    for secret in SECRETS:
        assert secret not in seen, secret
    assert "MRN: ********" in d["new_text"] and "DOS 03/14/2025" in d["new_text"]
    # Codes were found in the original text and their spans point at the same code in the masked one.
    assert [c["code"] for c in d["codes"] if not c["quoted"]] == ["99213", "20610", "J1100", "M54.16"]
    assert [c["code"] for c in d["codes"] if c["quoted"]] == ["99214"]
    for found in d["codes"]:
        for start, end in found["spans"]:
            assert d["new_text"][start:end].replace(".", "") == found["code"].replace(".", "")
    assert d["analysis"]["date_of_service"] == "2025-03-14"
    add_people(engine)
    page = signed_in(settings, engine, "alice").get(f"/questions/{qid}").text
    assert "<mark>20610</mark>" in page and "<mark>J1100</mark>" in page
    for secret in SECRETS:
        assert secret not in page, secret


def test_with_redaction_off_the_text_is_stored_as_written(engine, db_url):
    _, _, d = _stored(engine, False, db_url)
    assert "MRN: 00123456" in d["new_text"] and "00123456" in d["subject"]
    with Session(engine) as session:
        assert session.get(Question, d["id"]).new_text == d["new_text"]
