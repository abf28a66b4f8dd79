"""Tests for the pattern helpers of the code finder: fold() and any_of() spell case-insensitive
words with plain character classes, and must match exactly what (?i) matches."""
from __future__ import annotations

import re
import string

import pytest

from consultant.extract_context import any_of, fold


def test_fold_matches_exactly_what_ignorecase_matches_for_every_character():
    every = "".join(map(chr, range(0x110000)))
    for letter in string.ascii_lowercase:
        assert set(re.findall(fold(letter), every)) == set(re.findall(f"(?i:{letter})", every)), letter
    assert re.fullmatch(fold("-") + fold(" ") + fold("."), "- .")


@pytest.mark.parametrize("text", [
    "dx", "DX", "ddx", "Ddx", "d", "icd", "\u0130CD", "\u0131cd", "\u017fsn", "\u212am", "km", "kcal", "kca",
    "ssns", "y/o", "Y/O", "yo", "", "p.o. box", "P.O. BOX", "po box",
])
def test_any_of_matches_the_same_words_as_an_ignorecase_list(text):
    words = ["dx", "ddx", "icd", "ssn", "km", "kcal", "y/o", "yo", "p.o. box"]
    flat = re.compile("(?i:" + "|".join(re.escape(w) for w in words) + ")")
    assert bool(re.fullmatch(any_of(words), text)) == bool(flat.fullmatch(text))
