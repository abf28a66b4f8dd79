"""Tests for the code finder's context rules: ZIP codes, phone numbers, dates, amounts, NPIs and
other numbers that only look like codes; and that no text ever makes the finder raise."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consultant import extract_tokens
from consultant.codeindex import undot
from consultant.extract import find_codes
from consultant.extract_context import MODIFIERS
from extractsupport import INDEX, codes


# --- context traps: these are not codes ------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "Springfield, IL 62703", "Austin TX 78701-1234", "Portland OR 97201", "Austin, TX 78701",
])
def test_a_zip_code_after_a_state_is_not_a_code(text):
    assert codes(text) == []


@pytest.mark.parametrize("text", ["ZIP 62303", "zip code: 99213", "postal code 62303"])
def test_a_zip_label_makes_the_number_not_a_code(text):
    assert codes(text) == []


@pytest.mark.parametrize("text, expected", [
    ("99213 OR 97110", ["99213", "97110"]),  # OR is also a state; 971 is an Oregon ZIP prefix
    ("In TX 99213 pays more", ["99213"]),  # 992 is no Texas ZIP prefix
])
def test_a_state_abbreviation_that_is_no_address_does_not_hide_a_code(text, expected):
    assert codes(text) == expected


@pytest.mark.parametrize("text", [
    "555-123-4567", "(555) 123-4567", "555.123.4567", "+1 555 123 4567", "1-555-123-4567",
    "ext. 12345", "x12345", "extension 99213", "call 555 123 4567",
])
def test_phone_numbers_and_extensions_are_not_codes(text):
    found = find_codes(text, INDEX)
    assert found.codes == [] and found.modifiers == []


@pytest.mark.parametrize("text", [
    "Call 404-555-0199 x 99213", "Call 404-555-0199 x99213", "Call 404-555-0199 X 99213",
    "(404) 555-0199 x 99213", "404.555.0199, ext. 99213", "+1 404 555 0199 x 99213",
    "1-404-555-0199 extension 99213",
])
def test_an_extension_written_after_a_phone_number_is_not_a_code(text):
    found = find_codes(text, INDEX)
    assert found.codes == [] and found.modifiers == []


def test_units_written_with_x_still_count_next_to_a_phone_number():
    found = find_codes("Call 404-555-0199 x 99213 about 99213 x2 and J1100 x 2", INDEX)
    assert [(c.code, c.units) for c in found.codes] == [("99213", 2), ("J1100", 2)]


@pytest.mark.parametrize("text", [
    "2026-03-15", "03/15/2026", "3/15/26", "20260315", "15.03.2026", "10:30", "at 14:05", "12/25/2026",
])
def test_dates_and_times_are_not_codes(text):
    found = find_codes(text, INDEX)
    assert found.codes == [] and found.modifiers == []


@pytest.mark.parametrize("text", [
    "$12345", "$99,213", "$ 62303", "12,345.00", "99,213", "99213.00", "USD 62303", "62303 dollars",
    "€62303",
])
def test_amounts_are_not_codes(text):
    assert codes(text) == []


@pytest.mark.parametrize("text", [
    "NPI 1234567890", "1234567890", "TIN 12-3456789", "EIN 12-3456789", "SSN 123-45-6789", "SSN 123-25-6789",
])
def test_npis_and_tax_ids_are_not_codes(text):
    found = find_codes(text, INDEX)
    assert found.codes == [] and found.modifiers == []


@pytest.mark.parametrize("text", [
    "claim #62303", "claim number 99213", "Claim No. 99213", "member ID W12345678", "member id J1100",
    "acct 99214", "account: 99214", "ref# J1100", "reference 62303", "invoice 99213", "policy 62303",
    "group 99213", "ID 99213", "PO Box 99213", "P.O. Box 99213", "Suite 62303", "Room 99213",
    "#62303", "claim #62303-62305",
])
def test_claim_member_and_other_reference_numbers_are_not_codes(text):
    assert codes(text) == []


@pytest.mark.parametrize("text", ["123456", "9921300", "0042TT"])
def test_digit_runs_longer_than_a_code_are_not_codes(text):
    assert codes(text) == []


@pytest.mark.parametrize("text", ["ABC99213", "99213ABC", "x99213", "99213_1", "J1100A", "bJ1100"])
def test_digits_glued_to_letters_are_not_codes(text):
    assert codes(text) == []


@pytest.mark.parametrize("text", [
    "A1C", "HbA1c", "a1c", "B12", "B6", "D3", "K2", "COVID-19", "N95", "T4", "T3", "W2", "W-9", "I-9",
    "1099", "H2O", "CO2", "G6PD", "ICD-10", "CPT", "v2.1", "v10.2", "F150", "version 10.2",
])
def test_look_alikes_are_not_codes(text):
    found = find_codes(f"Checked the {text} today", INDEX)
    assert found.codes == [] and found.modifiers == []


def test_a_three_character_icd_category_is_a_code_only_when_the_index_knows_it():
    assert codes("Type 2 diabetes, E11") == ["E11"]
    assert codes("Type 2 diabetes, E13") == []


@pytest.mark.parametrize("text", [
    "https://x.test/99213", "see www.x.test/codes/62303", "bill99213@clinic.test", "99213@clinic.test",
    "jane.doe+99213@clinic.test", "https://x.test/a?code=J1100",
])
def test_codes_in_urls_and_email_addresses_are_not_codes(text):
    assert codes(text) == []


# --- robustness -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", " ", "\n\n", "-", "#", "$", "x", "Dx", "modifier", "99213-", "J1100 x"])
def test_short_and_empty_text_never_breaks_the_finder(text):
    find_codes(text, INDEX, text)


@pytest.mark.parametrize("text", ["MODIFIER XS.0", "modifier 59.5", "modifier XS-", "mod 25:00"])
def test_a_modifier_word_before_an_odd_token_never_breaks_the_finder(text):
    find_codes(text, INDEX)


def test_odd_unicode_around_codes_does_not_break_the_finder():
    text = "\u200b99213\u00a0\U0001F600 M54.16\u2028İstanbul ＃９９２１３ ٩٩٢١٣ e\u0301 J1100"
    assert codes(text) == ["99213", "M54.16", "J1100"]


def test_a_no_break_space_counts_as_a_space():
    found = find_codes("claim\u00a0#62303 and 99213\u00a0-25\u202fx2", INDEX).codes
    assert [(c.code, c.modifiers, c.units, c.spans) for c in found] == [("99213", ["25"], 2, [(17, 22)])]


def test_fullwidth_and_other_script_digits_are_not_codes():
    assert codes("９９２１３ and ٩٩٢١٣") == []


def test_a_large_text_is_scanned_in_one_pass():
    text = "Can I bill 99213-25 with J1100 x2? Dx M54.16. Call (555) 123-4567. " * 20000
    found = find_codes(text, INDEX)
    assert [c.code for c in found.codes] == ["99213", "J1100", "M54.16"]
    assert len(found.codes[0].spans) == 20000


_FRAGMENTS = st.sampled_from([
    "99213", "62302-62305", "-25", " 25", "J1100", " x2", "M54.16", "m5416", "Dx ", "modifier ", "XS",
    "(555) 123-4567", "$", "#", "claim ", "IL ", "62703", "3074F", "0042t", "2 units of ", " to ", "-",
    "–", " ", "\n", ".", ",", "/", "@", "https://", "A0471", "Z3A.38", "T36.0X1A", "E11", "ICD-10 ",
    "MODIFIER ", ".0", "RT", "/LT", " and ", "Springfield, ", "$ ", "×3", "(3 units)", "change ",
])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.lists(st.one_of(_FRAGMENTS, st.text(max_size=3)), max_size=30).map("".join)))
def test_any_text_never_raises_and_every_span_points_at_its_code(text):
    found = find_codes(text, INDEX, text[::-1])
    for code in found.codes:
        assert code.units >= 1
        assert set(code.modifiers) <= MODIFIERS and len(set(code.modifiers)) == len(code.modifiers)
        assert code.known == INDEX.has(code.system, code.code)
        assert code.quoted == (code.spans == [])
        for start, end in code.spans:
            assert 0 <= start < end <= len(text)
            written = text[start:end]
            if undot(written) == undot(code.code):
                continue
            # A code from the middle of a range points at the whole range.
            lo, hi = code.from_range.split("-")
            assert written[:len(lo)].upper() == lo and written[-len(hi):].upper() == hi
    assert set(found.modifiers) <= MODIFIERS


def test_what_the_scan_remembers_of_words_before_codes_stays_bounded_and_changes_no_reading():
    # Thousands of different words before codes: the memo is emptied, never grows past its size.
    text = " ".join(f"w{n} 99213" for n in range(extract_tokens.MEMO_SIZE + 50))
    assert codes(text) == ["99213"]
    assert 0 < len(extract_tokens.WORDS) <= extract_tokens.MEMO_SIZE
    # A word read before (warm) or not (cold) gives the same reading, in any case.
    for warm in (False, True):
        if not warm:
            extract_tokens.WORDS.clear()
        assert codes("Dx m5416 and dx R2D2") == ["M54.16", "R2D.2"]
        assert codes("bill m5416 and R2D2") == ["M54.16"]  # R2D2 only after a diagnosis label
        assert codes("claim 62303 and CLAIM 99213, bill 99214") == ["99214"]
