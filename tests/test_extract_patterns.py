"""Tests for the pattern helpers of the code finder: fold() and any_of() spell case-insensitive
words with plain character classes, and must match exactly what (?i) matches; the left-context
matchers are compiled on first use and match what LEFT_CONTEXT matches."""
from __future__ import annotations

import re
import string

import pytest

from consultant import extract_context
from consultant.extract_context import LEFT_CONTEXT, _left_matchers, any_of, cases, fold


def test_fold_matches_exactly_what_ignorecase_matches_for_every_character():
    every = "".join(map(chr, range(0x110000)))
    for letter in string.ascii_lowercase:
        assert set(re.findall(fold(letter), every)) == set(re.findall(f"(?i:{letter})", every)), letter
    assert re.fullmatch(fold("-") + fold(" ") + fold("."), "- .")


def test_cases_lists_every_character_ignorecase_matches_for_a_letter():
    every = "".join(map(chr, range(0x110000)))
    for letter in string.ascii_letters:
        assert sorted(cases(letter)) == sorted(set(re.findall(f"(?i:{letter})", every))), letter


@pytest.mark.parametrize("which", [1, 2])
def test_left_matchers_compile_on_first_use_and_match_what_left_context_matches(which):
    matchers = _left_matchers(which)
    assert not any(isinstance(getattr(m, "__self__", None), re.Pattern) for m in matchers.values())
    befores = ["claim #", "Claim No. ", "PO BOX ", "Dx: ", "icd-10 ", "USD ", "$", "Austin, TX ", "units: ",
               "x ", "modifier ", "mod -", "-", "code #", "#", "tax id: ", "ſsn ", "KCAL ", "İCD "]
    for before in befores:
        backwards = (before + "99213")[::-1]
        start = len("99213")
        # LEFT_AT: the character before the number; LEFT_AFTER_BLANKS: the one before the blanks.
        key = before[-1] if which == 1 else before.rstrip(" ")[-1] if before.endswith(" ") else None
        if key not in matchers:
            continue
        got = matchers[key](backwards, start, start + 48)
        want = LEFT_CONTEXT.match(backwards, start, start + 48)
        assert (got and (got.lastgroup, got.end())) == (want and (want.lastgroup, want.end())), before
        assert isinstance(matchers[key].__self__, re.Pattern)  # compiled, and kept for the next call


@pytest.mark.parametrize("text", [
    "dx", "DX", "ddx", "Ddx", "d", "icd", "\u0130CD", "\u0131cd", "\u017fsn", "\u212am", "km", "kcal", "kca",
    "ssns", "y/o", "Y/O", "yo", "", "p.o. box", "P.O. BOX", "po box",
])
def test_any_of_matches_the_same_words_as_an_ignorecase_list(text):
    words = ["dx", "ddx", "icd", "ssn", "km", "kcal", "y/o", "yo", "p.o. box"]
    flat = re.compile("(?i:" + "|".join(re.escape(w) for w in words) + ")")
    assert bool(re.fullmatch(any_of(words), text)) == bool(flat.fullmatch(text))


def test_the_group_names_read_from_the_pattern_text_are_those_of_the_compiled_patterns():
    # KINDS and TAIL_KINDS are made at import without compiling MASTER and TAIL (done on first use).
    assert list(extract_context.KINDS) == list(extract_context.MASTER.groupindex)
    assert list(extract_context.TAIL_KINDS) == list(extract_context.TAIL.groupindex)
    assert extract_context.KINDS["phone_1"] == "phone" and extract_context.TAIL_KINDS["units_4"] == "units"
    with pytest.raises(AttributeError):
        extract_context.NO_SUCH_PATTERN  # noqa: B018
