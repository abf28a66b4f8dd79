"""Tests for the code finder: what is a code, what hangs off it (modifiers, ranges, units), and
what only appears in quoted history. The traps (what only looks like a code) are in
test_extract_context.py."""
from __future__ import annotations

import pytest

from consultant.codeindex import CPT, HCPCS, ICD10CM
from consultant.extract import find_codes
from extractsupport import INDEX, codes, one


# --- what is found -------------------------------------------------------------------------------

def test_the_example_question_finds_two_procedures_a_diagnosis_and_an_unattached_modifier():
    text = "Can I bill 62303 with 72128, and do I need modifier 59? Dx M54.16"
    found = find_codes(text, INDEX)
    assert [(c.code, c.system, c.known) for c in found.asked()] == [
        ("62303", CPT, True), ("72128", CPT, True), ("M54.16", ICD10CM, True)]
    assert found.modifiers == ["59"]
    assert all(c.modifiers == [] and c.units == 1 for c in found.codes)
    assert [text[s:e] for c in found.codes for s, e in c.spans] == ["62303", "72128", "M54.16"]


def test_category_i_codes_are_found_including_anesthesia_codes_with_a_leading_zero():
    assert codes("Is 00142 billed with 99213?") == ["00142", "99213"]


def test_category_ii_and_iii_codes_are_found_in_any_case():
    found = find_codes("Report 3074f and 0042t please", INDEX).codes
    assert [(c.code, c.system, c.known) for c in found] == [("3074F", CPT, True), ("0042T", CPT, True)]


def test_hcpcs_level_ii_codes_are_found_in_any_case():
    found = find_codes("We gave j1100, billed G0439 and e0114.", INDEX).codes
    assert [(c.code, c.system, c.known) for c in found] == [
        ("J1100", HCPCS, True), ("G0439", HCPCS, True), ("E0114", HCPCS, True)]


@pytest.mark.parametrize("written, code", [
    ("M54.16", "M54.16"), ("m5416", "M54.16"), ("I10", "I10"), ("i10", "I10"), ("E11.9", "E11.9"),
    ("S72.001A", "S72.001A"), ("s72001a", "S72.001A"), ("T36.0X1A", "T36.0X1A"), ("Z3A.38", "Z3A.38"),
])
def test_icd_codes_are_found_with_or_without_the_dot_in_any_case(written, code):
    found = one(f"The diagnosis we used was {written} for this visit.", code)
    assert (found.system, found.known) == (ICD10CM, True)


def test_dotted_unknown_icd_code_is_reported_as_unknown():
    found = one("What about R99.999 instead?", "R99.999")
    assert (found.system, found.known) == (ICD10CM, False)


def test_undotted_unknown_icd_shaped_token_is_not_reported():
    assert codes("Part R2D2 and model Q12X were on the form") == []


@pytest.mark.parametrize("label", [
    "Dx", "dx:", "DX -", "ICD", "ICD-10", "icd-10-cm", "diagnosis", "diagnosis code is", "Dx is:",
])
def test_undotted_unknown_icd_after_a_diagnosis_label_is_reported_as_unknown(label):
    found = find_codes(f"{label} R9999", INDEX).codes
    assert [(c.code, c.system, c.known) for c in found] == [("R99.99", ICD10CM, False)]


def test_a_diagnosis_label_covers_the_whole_list_after_it():
    found = find_codes("Dx: M54.16, G8929 and A0471", INDEX).codes
    assert [(c.code, c.system) for c in found] == [
        ("M54.16", ICD10CM), ("G89.29", ICD10CM), ("A04.71", ICD10CM)]


def test_a_known_hcpcs_code_wins_over_the_same_token_read_as_icd():
    assert (one("Bill A0471 for the ambulance", "A0471").system) == HCPCS


def test_a_diagnosis_label_makes_letter_and_four_digits_an_icd_code():
    found = one("Dx A0471", "A04.71")
    assert (found.system, found.known) == (ICD10CM, True)


def test_a_known_icd_code_wins_over_an_unknown_hcpcs_code():
    found = one("Is F3210 enough?", "F32.10")
    assert (found.system, found.known) == (ICD10CM, True)


def test_an_unknown_letter_and_four_digits_is_an_unknown_hcpcs_code():
    found = one("What is J9999?", "J9999")
    assert (found.system, found.known) == (HCPCS, False)


def test_an_unknown_cpt_shaped_code_is_reported_as_unknown():
    found = one("Is 12345 a real code?", "12345")
    assert (found.system, found.known) == (CPT, False)


@pytest.mark.parametrize("number", ["00050", "99999", "99608"])
def test_a_five_digit_number_outside_the_cpt_range_is_not_a_code(number):
    assert codes(f"We counted {number} of them") == []


def test_a_category_iii_shape_without_a_leading_zero_is_not_a_code():
    assert codes("Form 1234T was filed") == []


def test_a_code_mentioned_twice_is_one_entry_with_two_spans():
    found = find_codes("99213 today, 99213 again tomorrow", INDEX).codes
    assert len(found) == 1 and found[0].spans == [(0, 5), (13, 18)]


def test_codes_keep_the_order_of_their_first_appearance():
    assert codes("72128 then 62303 then 72128 then M54.16") == ["72128", "62303", "M54.16"]


def test_a_code_at_the_very_start_and_end_of_the_text_is_found():
    assert codes("99213") == ["99213"]
    assert codes("99213 or 99214") == ["99213", "99214"]


@pytest.mark.parametrize("text", [
    "(99213)", "99213/99214", "99213,99214", "\"99213\"", "CPT: 99213.", "code 99213?",
])
def test_codes_next_to_punctuation_are_found(text):
    assert codes(text)[0] == "99213"


def test_a_cpt_label_with_a_hash_still_introduces_a_code():
    assert codes("CPT #99213 and code# 99214") == ["99213", "99214"]


# --- modifiers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, code, modifiers", [
    ("99213-25", "99213", ["25"]),
    ("99213 -25", "99213", ["25"]),
    ("99213 25", "99213", ["25"]),
    ("99213–25", "99213", ["25"]),
    ("99213-25-59", "99213", ["25", "59"]),
    ("64483 RT", "64483", ["RT"]),
    ("20610-RT/LT", "20610", ["RT", "LT"]),
    ("20610-rt", "20610", ["RT"]),
    ("72128 with modifier 59", "72128", ["59"]),
    ("72128 w/ mod XS", "72128", ["XS"]),
    ("99213 with a 25 modifier", "99213", ["25"]),
    ("99213 mod 25", "99213", ["25"]),
    ("99213 modifiers 25 and 59", "99213", ["25", "59"]),
    ("J1100-JW x2", "J1100", ["JW"]),
    ("3074F-8P", "3074F", ["8P"]),
    ("92928 RC", "92928", ["RC"]),
    ("64483-AS", "64483", ["AS"]),
])
def test_attached_modifiers_are_read_in_every_written_form(text, code, modifiers):
    found = find_codes(text, INDEX)
    assert one(text, code).modifiers == modifiers
    assert found.modifiers == []


def test_chained_modifiers_keep_their_order_without_duplicates():
    assert one("99213-59-25 and later 99213-25", "99213").modifiers == ["59", "25"]


def test_a_modifier_joined_by_and_is_mentioned_not_attached():
    found = find_codes("62303 and 59", INDEX)
    assert found.codes[0].modifiers == [] and found.modifiers == ["59"]


@pytest.mark.parametrize("text", ["99214 30 minutes", "99213 25 minutes", "J1100 50 mg", "99213 25%"])
def test_a_measurement_after_a_code_is_not_a_modifier(text):
    found = find_codes(text, INDEX)
    assert found.codes[0].modifiers == [] and found.modifiers == []


@pytest.mark.parametrize("text, modifiers", [
    ("do I need modifier 59?", ["59"]),
    ("mod 25 please", ["25"]),
    ("is -59 right", ["59"]),
    ("XS or RT", ["XS", "RT"]),
    ("modifiers 25 and xs", ["25", "XS"]),
    ("Modifier: 76", ["76"]),
])
def test_unattached_modifiers_are_listed(text, modifiers):
    found = find_codes(text, INDEX)
    assert found.codes == [] and found.modifiers == modifiers


@pytest.mark.parametrize("text", ["we saw 25 patients", "page 59", "about 50 of them"])
def test_a_bare_two_digit_number_is_not_a_modifier(text):
    assert find_codes(text, INDEX).modifiers == []


def test_lower_case_words_are_not_modifiers():
    found = find_codes("as well as lt and at the end; do this as soon as possible", INDEX)
    assert found.modifiers == []


def test_lower_case_wordlike_modifier_after_a_dash_is_not_a_modifier():
    assert one("99213-as needed", "99213").modifiers == []


def test_a_wordlike_modifier_after_a_bare_space_is_not_attached():
    found = find_codes("CAN I BILL 99214 AS WELL AS 99213 GO", INDEX)
    assert [c.modifiers for c in found.codes] == [[], []] and found.modifiers == []


def test_a_modifier_attached_somewhere_is_not_listed_as_unattached():
    found = find_codes("Billed 99213-25; is modifier 25 right?", INDEX)
    assert found.modifiers == []


def test_a_state_after_a_comma_is_not_a_modifier():
    assert find_codes("Our office is in Atlanta, GA.", INDEX).modifiers == []


@pytest.mark.parametrize("text", [
    "Atlanta GA 30303", "Macon GA 31201-1234", "Ridgeview Clinic, 12 Main St, Atlanta GA 30303. Thanks",
])
def test_a_state_before_its_zip_code_is_not_a_modifier(text):
    found = find_codes(text, INDEX)
    assert found.codes == [] and found.modifiers == []


@pytest.mark.parametrize("text, code, modifiers, mentioned", [
    ("GA modifier on 99213", "99213", [], ["GA"]),
    ("99213-GA", "99213", ["GA"], []),
    ("Atlanta GA 30303: can we bill 99213-GA?", "99213", ["GA"], []),
    ("Is GA needed with 99213?", "99213", [], ["GA"]),
])
def test_the_ga_modifier_is_still_read_next_to_an_address(text, code, modifiers, mentioned):
    found = find_codes(text, INDEX)
    assert [c.code for c in found.codes] == [code]
    assert found.codes[0].modifiers == modifiers and found.modifiers == mentioned


def test_standalone_abbreviations_that_are_also_modifiers_are_not_listed():
    assert find_codes("Read the T1 and T2 images; TB test; AI tools; PO meds", INDEX).modifiers == []


# --- ranges ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "62302-62305", "62302–62305", "62302 - 62305", "62302 through 62305", "62302 to 62305",
])
def test_ranges_expand_to_the_known_codes_in_every_written_form(text):
    found = find_codes(text, INDEX).codes
    assert [c.code for c in found] == ["62302", "62303", "62304", "62305"]
    assert {c.from_range for c in found} == {"62302-62305"}


def test_a_range_gives_its_ends_their_own_spans_and_the_middle_the_whole_range():
    found = find_codes("see 99202-99205", INDEX).codes
    assert [c.spans for c in found] == [[(4, 9)], [(4, 15)], [(4, 15)], [(10, 15)]]


def test_a_code_with_a_modifier_is_never_a_range():
    found = find_codes("99213-25", INDEX).codes
    assert [(c.code, c.modifiers, c.from_range) for c in found] == [("99213", ["25"], None)]


@pytest.mark.parametrize("text, expected", [
    ("99215-99213", ["99215", "99213"]),  # written backwards
    ("20610-72128", ["20610", "72128"]),  # more than 200 apart
    ("99213-3074F", ["99213", "3074F"]),  # not the same shape
    ("99213-J1100", ["99213", "J1100"]),  # not the same system
])
def test_ends_that_make_no_sane_range_are_separate_codes(text, expected):
    found = find_codes(text, INDEX).codes
    assert [c.code for c in found] == expected and all(c.from_range is None for c in found)


def test_a_range_with_nothing_known_reports_both_ends_as_unknown():
    found = find_codes("12340-12345", INDEX).codes
    assert [(c.code, c.known, c.from_range) for c in found] == [
        ("12340", False, "12340-12345"), ("12345", False, "12340-12345")]


def test_changing_one_code_to_another_is_not_a_range():
    assert codes("Should I change 99212 to 99215?") == ["99212", "99215"]


def test_range_expansion_keeps_to_the_shape_of_its_ends():
    # "3074F" sorts between 30740 and 30750 as a string; it is no member of 30740-30750.
    assert codes("30740-30750") == ["30740", "30750"]


def test_a_code_named_on_its_own_and_in_a_range_is_not_marked_as_from_the_range():
    assert one("62303 alone, then 62302-62305", "62303").from_range is None


# --- units ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, code, units", [
    ("J1100 x2", "J1100", 2), ("J1100 x 2", "J1100", 2), ("J1100x2", "J1100", 2),
    ("2 units of J1100", "J1100", 2), ("3 units J1100", "J1100", 3), ("96372 ×3", "96372", 3),
    ("J1100 (3 units)", "J1100", 3), ("96372 X 4", "96372", 4), ("J1100, 2 units", "J1100", 2),
])
def test_units_are_read_in_every_written_form(text, code, units):
    assert one(text, code).units == units


def test_units_default_to_one():
    assert one("J1100 for the injection", "J1100").units == 1


def test_the_first_mention_that_gives_units_decides():
    assert one("J1100 then J1100 x3 and J1100 x5", "J1100").units == 3


# --- quoted history -------------------------------------------------------------------------------

def test_a_code_only_in_quoted_history_is_quoted_with_no_spans():
    found = find_codes("Thanks, what about the modifier?", INDEX, "> Bill 99213-25 and J1100 x2").codes
    assert [(c.code, c.quoted, c.spans, c.modifiers, c.units) for c in found] == [
        ("99213", True, [], ["25"], 1), ("J1100", True, [], [], 2)]


def test_a_code_in_both_new_text_and_history_is_asked():
    found = find_codes("So 99213 is fine?", INDEX, "> You asked about 99213-25 and 72128")
    assert [c.code for c in found.asked()] == ["99213"]
    assert [c.code for c in found.quoted()] == ["72128"]
    assert found.asked()[0].modifiers == [] and found.asked()[0].spans == [(3, 8)]


def test_modifiers_mentioned_only_in_history_are_not_listed():
    assert find_codes("Thanks!", INDEX, "> do I need modifier 59?").modifiers == []
