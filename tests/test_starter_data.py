"""The bundled starter set: well-formed, consistent, in our own words, and covering what coders ask."""
import csv
import re
from collections import Counter

import pytest

from consultant.codeload import DATA

MARKER = "# CaseConsultant starter data, written by the project in its own words"
SHAPES = {"CPT": re.compile(r"^(\d{5}|\d{4}[FT])$"), "HCPCS": re.compile(r"^[A-CEGHJ-MP-V]\d{4}$")}
# Phrases that give away a copied official descriptor.
TELLTALES = ("(List separately in addition to code for primary procedure)", "; each additional",
             "and/or", "i.e.,")
MUST_HAVE = """99202 99203 99204 99205 99211 99212 99213 99214 99215 99221 99222 99223 99231 99232 99233
99238 99239 99281 99282 99283 99284 99285 99291 99292 99385 99386 99395 99396 96372 96365 96366 96367
96374 96375 20610 20611 20552 20553 62302 62303 62304 62305 72128 72129 72130 72131 72132 72133 62321
62323 64483 64484 64490 64491 64492 64493 64494 64495 77003 77012 36415 85025 80053 93000 71046 11102
11103 11104 17110 69209 69210 3074F 3075F 3078F 3079F 1036F 0232T J1100 J3301 J1030 J1040 J0585 J1885
J7325 J0702 J3420 G0438 G0439 G2211 G0008 Q0091 A4550 E0114 L3908""".split()


def read(suffix):
    rows = []
    for path in sorted(DATA.glob(f"*.{suffix}.csv")):
        text = path.read_text(encoding="utf-8")
        assert text.startswith(MARKER), f"{path.name} must open with the starter-data marker line"
        rows += [dict(r, _file=path.name) for r in
                 csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))]
    return rows


FAMILIES = read("families")
CODES = read("codes")
CODE_SET = {(r["system"], r["code"]) for r in CODES}


def test_there_are_enough_codes_and_families():
    systems = Counter(r["system"] for r in CODES)
    assert systems["CPT"] >= 400 and systems["HCPCS"] >= 150
    assert len(FAMILIES) >= 50


def test_every_must_have_code_is_present():
    present = {r["code"] for r in CODES}
    assert [c for c in MUST_HAVE if c not in present] == []


@pytest.mark.parametrize("row", CODES, ids=lambda r: f"{r['system']}-{r['code']}")
def test_each_code_is_well_formed_and_in_our_own_words(row):
    assert SHAPES[row["system"]].match(row["code"]), row["code"]
    assert 0 < len(row["title"]) <= 70
    assert 0 < len(row["description"]) <= 300
    for phrase in TELLTALES:
        assert phrase.lower() not in (row["title"] + " " + row["description"]).lower(), phrase


def test_no_code_appears_twice():
    counts = Counter((r["system"], r["code"]) for r in CODES)
    assert [key for key, n in counts.items() if n > 1] == []


def test_every_family_exists_has_three_codes_and_covers_its_range():
    families = {f["key"]: f for f in FAMILIES}
    assert len(families) == len(FAMILIES), "duplicate family keys"
    members = Counter(r["family"] for r in CODES)
    assert [r["code"] for r in CODES if r["family"] not in families] == []
    assert [k for k in families if members[k] < 3] == []
    for row in CODES:
        family = families[row["family"]]
        assert family["system"] == row["system"], row["code"]
        if family["range"] and row["system"] == "CPT" and row["code"].isdigit():
            low, high = family["range"].split("-")
            if low.isdigit() and high.isdigit():
                assert low <= row["code"] <= high, (row["code"], family["key"], family["range"])


def test_relations_only_name_codes_in_the_set():
    for row in CODES:
        for other in (row["addon_to"] + " " + row["see_also"]).split():
            assert (row["system"], other) in CODE_SET or any(c == other for _, c in CODE_SET), (row["code"], other)


def test_the_common_modifiers_each_have_a_meaning_in_our_own_words():
    from consultant.modifiers import MEANINGS, meaning

    common = "22 24 25 26 50 51 52 57 58 59 76 78 79 80 91 95 XE XS XP XU RT LT TC GA GZ KX JW JZ QW GP FS".split()
    assert [m for m in common if not meaning(m)] == []
    assert meaning("xs") == MEANINGS["XS"] and meaning("ZZ") is None
    assert len(MEANINGS) >= 60
    for text in MEANINGS.values():
        assert 10 < len(text) <= 200 and not any(t.lower() in text.lower() for t in TELLTALES)
