"""The code finder's equivalence corpus: texts, the indexes they are read with, and the outputs the
reference finder gave for them (tests/extract_expected.json.xz, checked by
test_extract_equivalence.py).

REFERENCE: the expected outputs were written by the finder of commit ea02d5a (consultant/extract.py
and extract_context.py before the speed work of issue 7), and every later finder must give exactly
the same. Rewrite the file only when the finder's behaviour is meant to change, and say so in the
commit: `.venv/bin/python tests/extractcorpus.py` from /work/main records what the checkout's finder
gives; with PYTHONPATH pointing at another copy of the package (run from outside the checkout),
what that copy gives.

The texts: the new and quoted text of every mailbox fixture, every text the tests of
test_extract.py and test_extract_context.py hand to the finder (recorded by running them), and
seeded random texts built from code-like tokens, words, punctuation, ranges, modifiers, units,
spaces and newlines. The random texts are not stored: they are made again from the seed, and a
digest of them shows that they are still the ones the outputs were recorded for.
"""
from __future__ import annotations

import csv
import hashlib
import json
import lzma
import random
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
CORPUS = TESTS / "extract_expected.json.xz"
RANDOM_TEXTS = 10_000
SEED = 7
MAX_RECORDED = 20_000  # characters; the tests' one huge text adds nothing a short one does not

_CODES = (
    "99213 99214 99215 99202 62302 62303 62304 62305 64483 72128 96372 97110 20610 00142 00100"
    " 99607 99608 00099 12345 30740 3074F 3074f 0042T 0042t 1234T 3078F J1100 j1100 G0439 A4550"
    " E0114 A0471 a0471 Q1234 Z9999 M54.16 m5416 M5416 I10 i10 E11.9 E11 e119 S72.001A s72001a"
    " T36.0X1A Z3A.38 A04.71 G89.29 G8929 N95 F15.0 F32.10 R99.999 R9999 R2D2 A1C B12 H2O F150 v10.2"
    " V10.2 C19 P90 M16 K21.9 99213.00 99,213 1.5 62303x2 J1100X3 J1100x2 99213-25 99213-25-59"
    " 99213-25-59-XS-RT-LT 20610-rt-lt-59-xs-25-50-76-77-91-tc-26-ga-gy-gz-kx-qw-xe-xp-xu"
).split()
_WORDS = (
    "bill billed with and or to through thru the a an of is was are for on claim member id NPI npi"
    " zip ZIP code codes Dx dx DX: ICD ICD-10 icd-10-cm diagnosis diag modifier modifiers mod mods"
    " MODIFIER units unit u x change changed from switch Springfield, Atlanta Austin IL GA OR TX MD"
    " PA CA NY as AS well plus & + w/ With minutes mg hours days dollars $ # No. no ref acct po box"
    " Hi, Thanks CPT HCPCS cpt# codes: Can I we do need pt seen left right LT RT XS xs"
    # Letters that (?i) matches beyond the plain two cases (dotless and dotted i, long s, Kelvin).
    " \u0131d D\u0130AG u\u017fd \u017fsn trac\u212aing \u0130CD un\u0131ts mod\u017f d\u0131agnosis"
    # Labels glued to punctuation, as they come before a number.
    " ## #: #id claim# code# id# no.# No.: Dx# Dx: dx- DX= mod: mod# modifiers: CPT# ICD-10: icd10cm"
    " x3: u: USD$ of: is: was= acct#: tax\tid"
).split()
_MODIFIERS = "-59 25 -25 59 -XS XS -xs -rt RT LT /LT /RT -50 50 GA -GA 1P -1p AS -AS -as TC -TC 76 91".split()
_RANGES = ["62303-62305", "62302–62305", "99213-99215", "62305-62303", "99213 to 99215", "64483 through 64484",
           "3074F-3078F", "J1100-J1120", "99213—99214", "62303 - 62305", "99202-99499", "00100-99607",
           "99213-99413", "99213-99414", "62300-62453", "J1100-J1300", "99213-J1100", "3074F-0042T"]
_UNITS = ["x3", "x2", "X2", "×3", " x 2", "(3 units)", "(x2)", "2 units of", ", 4 units", "x0", "x1000", "3 units",
          "units: 4", "u 3"]
_TRAPS = ["(555) 123-4567", "555-123-4567", "1-800-555-0199", "12/03/2024", "10:30", "$62,303.00", "62303-1234",
          "http://x.org/99213", "a@b99213.com", "www.99213.com", "claim #62303-01", "Atlanta, GA 30303"]
_PUNCT = list(",.;:#$-–—/&+()@?!'\"*=_%") + ["://", "...", " - ", "\u00a0", "\u2007"]
_SPACE = [" ", " ", " ", "  ", "\t", "\n", "\n\n", "", "\r\n"]


def random_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 24)):
        pick = rng.random()
        pool = (_CODES if pick < 0.3 else _WORDS if pick < 0.55 else _MODIFIERS if pick < 0.65
                else _RANGES if pick < 0.72 else _UNITS if pick < 0.8 else _TRAPS if pick < 0.85 else _PUNCT)
        parts.append(rng.choice(pool))
        parts.append(rng.choice(_SPACE) if rng.random() < 0.85 else "")
    return "".join(parts)


def random_cases(count: int = RANDOM_TEXTS, seed: int = SEED) -> list[tuple[str, str]]:
    """(text, quoted text) pairs; every fifth has quoted history of its own."""
    rng = random.Random(seed)
    return [(random_text(rng), random_text(rng) if n % 5 == 0 else "") for n in range(count)]


def indexes() -> dict:
    """The indexes every text is read with: empty, the tests' own, and a wide one."""
    from extractsupport import INDEX

    from consultant.codeindex import CodeIndex

    cpt, hcpcs = set(INDEX._sorted["CPT"]), set(INDEX._sorted["HCPCS"])
    for path in sorted((ROOT / "consultant" / "data" / "starter").glob("*.codes.csv")):
        with path.open(encoding="utf-8") as handle:
            for row in csv.DictReader(line for line in handle if not line.startswith("#")):
                (cpt if row["system"] == "CPT" else hcpcs).add(row["code"])
    cpt |= {f"{n:05d}" for n in range(62300, 62330)} | {f"{n:05d}" for n in range(99202, 99500)}
    icd = set(INDEX._sorted["ICD-10-CM"]) | {"K21.9", "M17.0", "M17.11", "J45.909", "M47.816", "R99", "C19"}
    return {"empty": CodeIndex(), "tests": INDEX, "wide": CodeIndex(cpt, hcpcs, icd)}


def fixture_cases() -> list[tuple[str, str]]:
    from consultant.reading import UnreadableMessage, read_message

    out = []
    for path in sorted((ROOT / "mailbox_fixtures").glob("*.eml")):
        try:
            reading = read_message(path.read_bytes())
        except UnreadableMessage:
            continue  # quarantined before the finder ever sees it
        out.append((reading.new_text, reading.quoted_text))
    return out


def outcome(findings) -> list:
    """Every field of every FoundCode, in order, and the unattached modifiers, as plain JSON data."""
    return [[[c.code, c.system, c.quoted, c.modifiers, c.units, c.known, [list(s) for s in c.spans],
              c.from_range] for c in findings.codes], findings.modifiers]


def _digest(pairs: list[tuple[str, str]]) -> str:
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


def load() -> list[dict]:
    """Every case: group, text, quoted, expected ({index name: outcome})."""
    with lzma.open(CORPUS, "rt", encoding="utf-8") as handle:
        stored = json.load(handle)
    made = random_cases(stored["random"]["count"], stored["random"]["seed"])
    if _digest(made) != stored["random"]["sha256"]:
        raise AssertionError("random_cases() no longer makes the texts the corpus was recorded for")
    return stored["cases"] + [{"group": "random", "text": text, "quoted": quoted, "expected": expected}
                              for (text, quoted), expected in zip(made, stored["random"]["expected"])]


def _recorded_test_texts() -> list[tuple[str, str]]:
    """Every (text, quoted text) the finder's own tests hand to find_codes, by running them."""
    import pytest

    from consultant import extract

    seen: dict[tuple[str, str], None] = {}
    real = extract.find_codes

    def recording(text, index, quoted_text=""):
        if len(text or "") + len(quoted_text or "") <= MAX_RECORDED:
            seen.setdefault((text or "", quoted_text or ""))
        return real(text, index, quoted_text)

    extract.find_codes = recording
    try:
        code = pytest.main(["-q", "-p", "no:cacheprovider",
                            str(TESTS / "test_extract.py"), str(TESTS / "test_extract_context.py")])
    finally:
        extract.find_codes = real
    if code != 0:
        raise SystemExit("the finder's tests fail: fix them before recording a reference")
    return list(seen)


def write() -> None:
    """Record what the current finder gives for every case; only for a finder that is the reference."""
    from consultant.extract import find_codes

    named = indexes()

    def expected(text: str, quoted: str) -> dict:
        return {name: outcome(find_codes(text, index, quoted)) for name, index in named.items()}

    cases = [{"group": group, "text": text, "quoted": quoted, "expected": expected(text, quoted)}
             for group, pairs in (("fixtures", fixture_cases()), ("tests", _recorded_test_texts()))
             for text, quoted in pairs]
    made = random_cases()
    stored = {"cases": cases, "random": {"seed": SEED, "count": len(made), "sha256": _digest(made),
                                         "expected": [expected(text, quoted) for text, quoted in made]}}
    with lzma.open(CORPUS, "wt", encoding="utf-8", preset=9) as handle:
        json.dump(stored, handle, ensure_ascii=False, separators=(",", ":"))
    print(f"{len(cases) + len(made)} cases written to {CORPUS.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, str(TESTS))
    write()
