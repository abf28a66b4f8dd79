"""The code finder's test index and helpers, shared by test_extract.py and test_extract_context.py."""
from __future__ import annotations

from consultant.codeindex import CodeIndex
from consultant.extract import FoundCode, find_codes

# A small index written by hand: a few dozen codes are enough to tell known from unknown.
INDEX = CodeIndex(
    cpt=[
        "00142", "20610", "62302", "62303", "62304", "62305", "64483", "72128", "96372", "97110",
        "97140", "99202", "99203", "99204", "99205", "99212", "99213", "99214", "99215",
        "30740", "30750", "3074F", "0042T",
    ],
    hcpcs=["J1100", "G0439", "A4550", "E0114", "A0471"],
    icd=[
        "M54.16", "M51.26", "I10", "E11.9", "E11", "S72.001A", "T36.0X1A", "Z3A.38", "A04.71",
        "G89.29", "N95", "F15.0", "F32.10",
    ],
)


def codes(text: str, quoted_text: str = "") -> list[str]:
    return [c.code for c in find_codes(text, INDEX, quoted_text).codes]


def one(text: str, code: str) -> FoundCode:
    found = [c for c in find_codes(text, INDEX).codes if c.code == code]
    assert found, f"{code} not found in {text!r}"
    return found[0]
