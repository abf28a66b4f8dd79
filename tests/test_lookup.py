"""Code facts (consultant.lookup.Lookup): a code looked up for the first time costs a few queries,
what codes share (categories above ICD-10-CM codes, families, releases) is read once, and none of
that changes the facts or outlives a new release."""
import dataclasses
from pathlib import Path

from sqlmodel import Session

from consultant.importers import import_cpt
from consultant.lookup import Lookup
from support import recorded

CPT_LONG = Path(__file__).resolve().parent / "codefiles" / "cpt_long_2025.txt"

# Bundled codes of every shape: ICD-10-CM billable codes, their categories (headers, which list
# their billable codes), codes sharing a category, starter CPT and HCPCS with families and links.
CODES = [("ICD-10-CM", "M54.16"), ("ICD-10-CM", "M54.17"), ("ICD-10-CM", "M54.1"), ("ICD-10-CM", "M54"),
         ("ICD-10-CM", "E11.9"), ("ICD-10-CM", "E11.65"), ("ICD-10-CM", "I10"), ("ICD-10-CM", "M17.11"),
         ("CPT", "62303"), ("CPT", "62304"), ("CPT", "72128"), ("CPT", "99213"), ("CPT", "64483"),
         ("CPT", "64484"), ("HCPCS", "J1100"), ("CPT", "00000"), ("ICD-10-CM", "Z99.999")]


def facts(lookup: Lookup, system: str, code: str) -> dict:
    return dataclasses.asdict(lookup.facts(system, code))


def test_facts_from_one_lookup_are_those_of_a_fresh_lookup_for_each_code(engine):
    with Session(engine) as session:
        shared = Lookup(session)
        together = [facts(shared, system, code) for system, code in CODES]
        alone = [facts(Lookup(session), system, code) for system, code in CODES]
    assert together == alone
    by_code = {f["code"]: f for f in together}
    assert by_code["M54.16"]["known"] and by_code["M54.16"]["related"][0]["kind"] == "parent"
    assert {r["kind"] for r in by_code["M54.1"]["related"]} >= {"parent", "child"}
    assert not by_code["00000"]["known"] and not by_code["Z99.999"]["known"]
    assert by_code["62303"]["family_title"] and by_code["62303"]["source"].startswith("CaseConsultant starter set")


def test_a_code_under_a_category_already_read_costs_two_queries(engine):
    with Session(engine) as session:
        lookup = Lookup(session)
        lookup.facts("ICD-10-CM", "M54.16")  # reads M54.16, and M54.1 and M54 above it
        with recorded(engine) as cold:
            lookup.facts("ICD-10-CM", "M54.17")
        with recorded(engine) as again:
            lookup.facts("ICD-10-CM", "M54.17")
    assert len(cold) == 2  # its own row and its neighbours; the categories above were read before
    assert again == []  # and the second time, none


def test_a_new_release_is_seen_after_refresh_descriptors_included(engine):
    with Session(engine) as session:
        lookup = Lookup(session)
        before = lookup.facts("CPT", "27447")
        assert before.descriptor is None
        import_cpt(session, CPT_LONG)
        session.commit()
        lookup.refresh()
        after = lookup.facts("CPT", "27447")
    assert after.descriptor and after.descriptor.startswith("SAMPLE knee joint replacement")
    assert after.descriptor_source == "CPT long descriptors 2025"


def test_the_cache_starts_afresh_at_its_limit_and_gives_the_same_facts(engine, monkeypatch):
    from consultant import lookup as lookup_module

    monkeypatch.setattr(lookup_module, "CACHE_LIMIT", 3)
    with Session(engine) as session:
        lookup = Lookup(session)
        first = [facts(lookup, system, code) for system, code in CODES]
        assert len(lookup._cache) <= 3 and len(lookup._rows) <= 3 + 3  # a code and the categories above it
        again = [facts(lookup, system, code) for system, code in CODES]
    assert first == again


def index_reads(statements) -> int:
    return sum("GROUP BY code.system" in statement for statement, _ in statements)


def test_the_code_index_is_read_when_first_needed_and_again_after_a_new_release(engine):
    with Session(engine) as session:
        with recorded(engine) as made:
            lookup, unasked = Lookup(session), Lookup(session)
            lookup.refresh()
            unasked.refresh()
            lookup.facts("CPT", "62303")
        with recorded(engine) as first:
            assert lookup.index.has("CPT", "62303") and lookup.index.icd("M5416") == "M54.16"
        with recorded(engine) as kept:
            lookup.refresh()
            assert lookup.index.has("CPT", "62303")
        import_cpt(session, CPT_LONG)
        session.commit()
        with recorded(engine) as renewed:
            lookup.refresh()
            unasked.refresh()
    assert index_reads(made) == 0  # facts need no index
    assert index_reads(first) == 1
    assert len(kept) == 1  # whether a release was loaded, nothing more
    assert index_reads(renewed) == 1  # read again by the lookup that had read it, not by the other
