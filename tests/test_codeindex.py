"""The index of known codes: what it answers, built from lists or read from the code tables."""
from sqlalchemy import select
from sqlmodel import Session

from consultant.codeindex import CPT, HCPCS, ICD10CM, SYSTEMS, CodeIndex
from consultant.codetables import Code
from consultant.lookup import Lookup


def test_icd_codes_are_found_with_or_without_the_dot_in_any_case():
    index = CodeIndex(cpt=["62303", "62305"], hcpcs=["j1100"], icd=["M54.16", "m5417", "I10", "A0"])
    assert index.icd("m5416") == "M54.16" and index.icd("M54.17") == "M54.17" and index.icd("i10") == "I10"
    assert index.icd("M54.1") is None and index.has(ICD10CM, "a0") and not index.has(ICD10CM, "A00")
    assert index.has(HCPCS, "J1100") and index.has(CPT, "62305") and not index.has(CPT, "62304")
    assert index.between(CPT, "62300", "62310") == ["62303", "62305"]
    assert index.between(ICD10CM, "M54", "M55") == ["M54.16", "M54.17"]
    assert index.between("other", "A", "Z") == [] and len(index) == 7
    assert index.codes(ICD10CM) == {"M54.16", "M54.17", "I10", "A0"}


def test_a_code_with_a_line_break_is_indexed_as_written():
    # ICD-10-CM codes are undotted in one pass over the joined list, which a line break would
    # split: such a list is read code by code instead.
    index = CodeIndex(icd=["M54.16", "X1\nY2", ""])
    assert index.has(ICD10CM, "x1\ny2") and index.icd("M5416") == "M54.16" and len(index) == 3


def test_the_index_read_from_the_tables_answers_as_one_built_row_by_row(engine):
    with Session(engine) as session:
        session.add(Code(system=CPT, code="Z9\n9", title="a code with a line break", addon=False,
                         billable=True, status="active"))
        session.commit()
        read = Lookup(session).index
        rows = session.execute(select(Code.system, Code.code)).all()
    built = CodeIndex.from_rows(rows)
    assert len(read) == len(built) > 70_000
    for system in SYSTEMS:
        assert read.codes(system) == built.codes(system)
        assert read.between(system, "", "~") == built.between(system, "", "~")
    assert read.has(CPT, "Z9\n9") and read.icd("m5416") == "M54.16"
