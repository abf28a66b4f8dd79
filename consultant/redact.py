"""Mask patient identifiers (SSNs, labelled record and member numbers, dates of birth, phone and fax
numbers) in question text, keeping what coders ask about: codes, modifiers, units, dates of service,
amounts and ZIP codes.

Masking keeps the length of the text: every letter and digit of an identifier becomes MASK and
punctuation stays ("DOB 01/02/1960" -> "DOB **/**/****"). Positions found in the original text (the
spans of the codes the reviewer sees highlighted) therefore still point at the same characters.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "*"

# A value after a label: one token with at least one digit ("00123456", "W123456789", "12-3456").
_VALUE = r"(?P<v>(?=[A-Za-z0-9-]*[0-9])[A-Za-z0-9](?:[A-Za-z0-9-]{2,22}[A-Za-z0-9])?)(?![\w-])"
# Between a label and its value: "MRN: ", "member ID # ", "Medicaid no. ", "policy number is ".
_ID_WORD = r"(?:id|identifier|number|num|nbr|no\.?|\#)"
_GLUE = rf"[ \t]*(?:[:#=]|{_ID_WORD}(?:(?<=[#.])|\b)|is\b|-)?[ \t]*(?:[:#=][ \t]*)?"

# Labels that name an identifier on their own ("MRN 00123456", "SSN: 123456789").
_STRONG = (r"mrn|mr\#|ssn|ss\#|mbi|hicn|hic|medical[ \t]+record(?:[ \t]+(?:number|no\.?|\#))?"
           r"|social[ \t]+security(?:[ \t]+(?:number|no\.?|\#))?")
# Words that name one only with an ID word after them ("member ID W123", "policy # A12", not
# "Medicare 99213" or "account 2025").
_WEAK = (r"member|mbr|subscriber|sub|policy|policyholder|account|acct|patient|pt|chart|insurance|ins"
         r"|medicaid|medicare|beneficiary|health[ \t]+plan")

LABELLED = re.compile(
    rf"(?i)(?<![\w#])(?:(?:{_STRONG})(?![\w])|(?:{_WEAK})[ \t]*(?:{_ID_WORD}(?:(?<=[#.])|\b)))" + _GLUE + _VALUE)

_MONTHS = (r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
           r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?")
_DATE = (rf"(?P<v>[0-9]{{1,2}}[/.-][0-9]{{1,2}}[/.-](?:[0-9]{{4}}|[0-9]{{2}})"
         rf"|[0-9]{{4}}-[0-9]{{1,2}}-[0-9]{{1,2}}"
         rf"|(?:{_MONTHS})\.?[ \t]+[0-9]{{1,2}}(?:st|nd|rd|th)?,?[ \t]+[0-9]{{4}}"
         rf"|[0-9]{{1,2}}(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?(?:{_MONTHS})\.?,?[ \t]+[0-9]{{4}})(?![\w/])")
BIRTH = re.compile(
    r"(?i)(?<!\w)(?:dob|d\.o\.b\.?|date[ \t]+of[ \t]+birth|birth[ \t]*date|birthday|born(?:[ \t]+on)?)"
    r"[ \t]*(?:[:#=-]|is\b|was\b)?[ \t]*" + _DATE)

SSN = re.compile(r"(?<![\w/.-])(?P<v>[0-9]{3}([- ])[0-9]{2}\2[0-9]{4})(?![\w/-]|\.[0-9])")

_EXT = r"(?:[ \t]*,?[ \t]*(?:x|ext\.?|extension)[ \t]*[0-9]{1,6}(?![0-9]))?"
PHONE = re.compile(
    rf"(?i)(?<![\w/.-])(?P<v>(?:\+?1[ .-]?)?(?:\([0-9]{{3}}\)[ ]?|[0-9]{{3}}[ .-])[0-9]{{3}}[ .-][0-9]{{4}}{_EXT})"
    r"(?![\w/-]|\.[0-9])")
# Ten digits run together count only with a label: "fax 4045550199", "cell: 404 5550199".
PHONE_LABELLED = re.compile(
    r"(?i)(?<!\w)(?:phone|ph|tel|telephone|fax|cell|mobile|pager)\.?[ \t]*(?:#|no\.?|number)?[ \t]*[:=-]?[ \t]*"
    r"(?P<v>(?:\+?1[ .-]?)?[0-9]{3}[ .-]?[0-9]{3}[ .-]?[0-9]{4})(?![\w-])")

PATTERNS = (("ssn", SSN), ("birth", BIRTH), ("id", LABELLED), ("phone", PHONE), ("phone", PHONE_LABELLED))


def spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of each identifier value in text, in order, overlaps merged."""
    found = sorted((m.start("v"), m.end("v"), kind)
                   for kind, pattern in PATTERNS for m in pattern.finditer(text or ""))
    merged: list[tuple[int, int, str]] = []
    for start, end, kind in found:
        if merged and start < merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), last[2])
        else:
            merged.append((start, end, kind))
    return merged


def mask(text: str | None, protect: Iterable[tuple[int, int]] = ()) -> str | None:
    """text with each identifier's letters and digits replaced by MASK, same length; an identifier
    that overlaps a protected span (a code found in the original text) is left as it is."""
    if not text:
        return text
    keep = sorted(protect)
    chars = list(text)
    for start, end, _ in spans(text):
        if any(s < end and start < e for s, e in keep):
            continue
        for i in range(start, end):
            if chars[i].isalnum():
                chars[i] = MASK
    return "".join(chars)



def masked_fields(protect: Iterable[tuple[int, int]], **fields: str | None) -> dict[str, str | None]:
    """Mask each field; `protect` (code spans) applies to new_text, whose spans they are."""
    protect = list(protect)
    return {name: mask(value, protect if name == "new_text" else ()) for name, value in fields.items()}
