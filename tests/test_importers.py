"""Importers for licensed code files: each layout, bad rows, releases (`codes import` is in test_knowledge.py)."""
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from consultant.codetables import Code, Descriptor, FeeRule, Mue, PtpEdit, Release
from consultant.importers import (ImportFileError, guess_effective, import_cpt, import_hcpcs, import_mue,
                                  import_pfs_rvu, import_ptp, in_force, list_releases, parse_cpt, parse_hcpcs,
                                  parse_mue, parse_ptp, parse_rvu)

FILES = Path(__file__).resolve().parent / "codefiles"
CPT_LONG = FILES / "cpt_long_2025.txt"
HCPCS_FIXED = FILES / "HCPC2025_JAN_sample.txt"
HCPCS_CSV = FILES / "HCPC2025_JAN_sample.csv"
PTP_PRACTITIONER = FILES / "ptp_practitioner_2025q2.txt"
PTP_HOSPITAL = FILES / "ptp_hospital_2025q2.txt"
MUE_PRACTITIONER = FILES / "MUE_PractitionerServices_Eff_04-01-2025.csv"
MUE_DME = FILES / "MUE_DMESupplier_2025Q2.csv"
RVU = FILES / "PPRRVU25_APR_sample.csv"


def load(engine, importer, *args, **kwargs):
    with Session(engine, expire_on_commit=False) as session:
        done = importer(session, *args, **kwargs)
        session.commit()
    return done


def rows_of(engine, table, release_id=None):
    with Session(engine) as session:
        query = select(table)
        if release_id is not None:
            query = query.where(table.release_id == release_id)
        return session.execute(query).scalars().all()


def count(engine, table) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(table)).scalar_one()


def code_row(engine, system, code):
    with Session(engine) as session:
        return session.get(Code, (system, code))


def release_kind(engine, release_id):
    with Session(engine) as session:
        return session.get(Release, release_id).kind


# -- CPT -------------------------------------------------------------------------------------------

def test_cpt_descriptors_load_and_unknown_codes_become_known_codes(engine):
    done = load(engine, import_cpt, CPT_LONG)
    assert (done.rows, done.new_codes, done.release.effective) == (4, 3, "2025")
    assert done.release.name == "CPT long descriptors 2025" and done.release.file_name == CPT_LONG.name
    texts = {d.code: (d.kind, d.text) for d in rows_of(engine, Descriptor, done.release.id)}
    assert texts["27447"][0] == "long" and texts["27447"][1].startswith("SAMPLE knee joint")
    new = code_row(engine, "CPT", "27447")
    assert new.title == texts["27447"][1] and new.family is None and new.release_id == done.release.id
    assert len(code_row(engine, "CPT", "29881").title) == 200  # the title is the descriptor cut short
    assert code_row(engine, "CPT", "0001U") is not None
    starter = code_row(engine, "CPT", "99213")
    assert release_kind(engine, starter.release_id) == "starter" and "SAMPLE" not in starter.title


def test_cpt_medium_and_short_descriptors_are_separate_releases(engine, tmp_path):
    short = tmp_path / "cpt_short_2025.txt"
    short.write_text("99213\tSAMPLE est visit low\n27447\tSAMPLE knee replacement\n")
    long_done = load(engine, import_cpt, CPT_LONG)
    short_done = load(engine, import_cpt, short, kind="short")
    assert short_done.release.name == "CPT short descriptors 2025" and short_done.new_codes == 0
    kinds = {(d.code, d.kind) for d in rows_of(engine, Descriptor) if d.system == "CPT"}
    assert {("27447", "long"), ("27447", "short")} <= kinds
    assert len(rows_of(engine, Descriptor, long_done.release.id)) == 4


def test_a_cpt_file_with_a_bom_and_a_header_line_is_read(tmp_path):
    path = tmp_path / "LONGULT.txt"
    path.write_bytes(b"\xef\xbb\xbfHCPCS\tLong description\r\n99213\tSAMPLE visit\r\n\r\n")
    assert parse_cpt(path) == [("99213", "SAMPLE visit")]


@pytest.mark.parametrize("raw, text", [
    (b"99213\tSAMPLE caf\xe9 visit \x96 low\n", "SAMPLE café visit – low"),  # cp1252
    (b"99213\tSAMPLE odd byte \x81 here\n", "SAMPLE odd byte \x81 here"),  # not cp1252: latin-1
    ("99213\tSAMPLE café visit\n".encode("utf-16"), "SAMPLE café visit"),  # Excel "Unicode text"
])
def test_cms_and_excel_encodings_are_decoded(tmp_path, raw, text):
    path = tmp_path / "cpt.txt"
    path.write_bytes(raw)
    assert parse_cpt(path) == [("99213", text)]


# -- HCPCS -----------------------------------------------------------------------------------------

def test_hcpcs_fixed_width_joins_continuations_and_skips_modifiers(engine):
    done = load(engine, import_hcpcs, HCPCS_FIXED)
    assert (done.rows, done.skipped, done.new_codes) == (4, 2, 3)
    assert done.release.name == "HCPCS Level II 2025Q1" and done.release.effective == "2025Q1"
    found = {(d.code, d.kind): d for d in rows_of(engine, Descriptor, done.release.id)}
    ambulance = found["A0021", "long"]
    assert ambulance.text.endswith("written by the CaseConsultant project for its importer tests, "
                                   "continued on a second and a third line")
    assert found["A0021", "short"].text == "SAMPLE ambulance, other stat"
    assert (ambulance.effective, ambulance.end_date, ambulance.action) == (date(2000, 1, 1), None, "N")
    changed = found["J1100", "long"]  # effective = action effective date, not the add date
    assert (changed.effective, changed.action) == (date(2025, 1, 1), "C")
    assert found["K1099", "long"].end_date == date(2023, 12, 31)
    assert not any(code in ("AA", "AB") for code, _ in found)
    gone = code_row(engine, "HCPCS", "K1099")
    assert (gone.status, gone.end_date, gone.effective) == ("deleted", date(2023, 12, 31), date(2019, 1, 1))
    later = code_row(engine, "HCPCS", "G9999")
    assert (later.status, later.end_date) == ("active", date(2099, 12, 31))
    assert release_kind(engine, code_row(engine, "HCPCS", "J1100").release_id) == "starter"


def test_hcpcs_csv_export_gives_the_same_rows_as_the_fixed_width_file(sqlite_engine):
    def descriptors():
        return sorted((d.code, d.kind, d.text, d.effective, d.end_date, d.action)
                      for d in rows_of(sqlite_engine, Descriptor) if d.system == "HCPCS")

    load(sqlite_engine, import_hcpcs, HCPCS_FIXED)
    fixed = descriptors()
    done = load(sqlite_engine, import_hcpcs, HCPCS_CSV)
    assert (done.rows, done.skipped) == (4, 2)
    assert descriptors() == fixed and len(fixed) == 8
    assert [r["name"] for r in list_releases_of(sqlite_engine, "hcpcs")] == ["HCPCS Level II 2025Q1"]


def list_releases_of(engine, kind):
    with Session(engine) as session:
        return [r for r in list_releases(session) if r["kind"] == kind]


# -- NCCI PTP --------------------------------------------------------------------------------------

def test_ptp_edits_load_with_dates_flags_and_modifier_indicators(engine):
    done = load(engine, import_ptp, PTP_PRACTITIONER)
    assert done.rows == 5 and done.release.name == "NCCI PTP practitioner 2025Q2"
    edits = {(e.column1, e.column2): e for e in rows_of(engine, PtpEdit, done.release.id)}
    spine = edits["62303", "72128"]
    assert (spine.modifier_indicator, spine.effective, spine.deletion, spine.prior_1996) == (
        "1", date(2024, 1, 1), None, False)
    assert spine.setting == "practitioner" and spine.rationale.startswith("Sample rationale")
    assert edits["27447", "29881"].prior_1996 and edits["27447", "29881"].effective == date(1996, 1, 1)
    assert edits["99213", "36415"].deletion == date(2019, 12, 31)
    assert {e.modifier_indicator for e in edits.values()} == {"0", "1", "9"}


def test_practitioner_and_hospital_edits_are_kept_apart(engine):
    practitioner = load(engine, import_ptp, PTP_PRACTITIONER)
    hospital = load(engine, import_ptp, PTP_HOSPITAL)  # the setting comes from the file name
    assert hospital.release.name == "NCCI PTP hospital 2025Q2"
    again = load(engine, import_ptp, PTP_PRACTITIONER, setting="practitioner")
    by_setting = {}
    for e in rows_of(engine, PtpEdit):
        by_setting.setdefault(e.setting, set()).add((e.column1, e.column2, e.modifier_indicator, e.release_id))
    assert ("62303", "72128", "0", hospital.release.id) in by_setting["hospital"]
    assert len(by_setting["hospital"]) == 2 and len(by_setting["practitioner"]) == 5
    assert {r for *_, r in by_setting["practitioner"]} == {again.release.id} != {practitioner.release.id}


def test_several_ptp_files_of_one_quarter_load_as_one_release(engine, tmp_path):
    second = tmp_path / "ccipra-v312r0-f2.txt"
    second.write_text("Column 1\tColumn 2\n0232T\t20610\t\t20250101\t*\t1\tSample rationale\n")
    done = load(engine, import_ptp, [PTP_PRACTITIONER, second], effective="2025q2")
    assert done.rows == 6 and done.release.file_name == f"{PTP_PRACTITIONER.name}, {second.name}"
    assert len(rows_of(engine, PtpEdit, done.release.id)) == 6


def test_two_quarters_coexist_and_the_one_loaded_last_is_in_force(engine):
    q1 = load(engine, import_ptp, PTP_PRACTITIONER, effective="2025Q1")
    q2 = load(engine, import_ptp, PTP_PRACTITIONER, effective="2025Q2")
    hospital = load(engine, import_ptp, PTP_HOSPITAL)
    assert count(engine, PtpEdit) == 12
    with Session(engine) as session:
        assert [r.id for r in in_force(session, "ncci-ptp")] == [q2.release.id, hospital.release.id]
        flags = {r["id"]: r["in_force"] for r in list_releases(session)}
    assert flags[q1.release.id] is False and flags[q2.release.id] is True


# -- MUE -------------------------------------------------------------------------------------------

def test_mue_limits_load_with_each_adjudication_indicator(engine):
    done = load(engine, import_mue, MUE_PRACTITIONER)
    assert done.rows == 4 and done.release.name == "MUE practitioner 2025Q2"
    limits = {m.code: m for m in rows_of(engine, Mue, done.release.id)}
    assert (limits["J1100"].units, limits["J1100"].adjudication) == (100, "3 Date of Service Edit: Clinical")
    assert limits["62303"].adjudication == "2 Date of Service Edit: Policy"
    assert limits["72128"].adjudication == "1 Line Edit" and limits["72128"].setting == "practitioner"


def test_an_mue_header_wrapped_over_two_rows_is_joined(engine):
    done = load(engine, import_mue, MUE_DME)
    assert done.release.name == "MUE dme 2025Q2"
    assert {(m.code, m.units, m.setting) for m in rows_of(engine, Mue)} == {("E0601", 1, "dme"), ("A4253", 4, "dme")}


# -- PFS RVU ---------------------------------------------------------------------------------------

def test_fee_schedule_rows_load_from_a_header_split_over_rows(engine):
    done = load(engine, import_pfs_rvu, RVU)
    assert done.rows == 5 and done.release.effective == "2025Q2"
    rules = {(r.code, r.modifier): r for r in rows_of(engine, FeeRule, done.release.id)}
    knee = rules["27447", None]
    assert (knee.status_code, knee.global_days, knee.mult_proc, knee.bilat_surg, knee.asst_surg,
            knee.co_surg, knee.team_surg) == ("A", "090", "2", "1", "2", "1", "0")
    assert rules["72128", None].bilat_surg == "0" and rules["72128", "26"].global_days == "XXX"


def test_a_fee_schedule_header_on_one_row_is_read(tmp_path):
    path = tmp_path / "rvu.csv"
    path.write_text("Sample title\nHCPCS,MOD,DESCRIPTION,STATUS CODE,GLOB DAYS,MULT PROC,BILAT SURG,"
                    "ASST SURG,CO-SURG,TEAM SURG\n20610,,SAMPLE,A,000,2,1,1,0,0\n")
    assert parse_rvu(path) == [("20610", None, "A", "000", "2", "1", "1", "0", "0")]


# -- bad files -------------------------------------------------------------------------------------

MUE_HEAD = '"SAMPLE DATA"\n"note"\nHCPCS/CPT Code,MUE Value,MUE Adjudication Indicator,MUE Rationale\n'
PTP_HEAD = "SAMPLE DATA\nColumn 1\tColumn 2\tprior\tEffective\tDeletion\tModifier\tRationale\n"
RVU_HEAD = "HCPCS,MOD,DESCRIPTION,STATUS CODE,GLOB DAYS,MULT PROC,BILAT SURG,ASST SURG,CO-SURG,TEAM SURG\n"
MUE_ROWS = ("J1100,100,3 Date of Service Edit: Clinical,x\n62303,1,2 Date of Service Edit: Policy,x\n"
            "72128,2,1 Line Edit,x\n")
PTP_ROW = "62303\t72128\t\t20240101\t*\t1\tx\n"
RVU_ROW = "20610,,SAMPLE,A,000,2,1,1,0,0\n"
BAD = {  # name: (parser, file name, text, the message it must start with)
    "cpt-code": (parse_cpt, "cpt.txt", "Code\tText\n99213\tSAMPLE\n9921\tSAMPLE\n",
                 'cpt.txt line 3, column "code": "9921" is not a CPT code'),
    "cpt-descriptor": (parse_cpt, "cpt.txt", "99213\tSAMPLE\n27447\t  \n",
                       'cpt.txt line 2, column "descriptor": 27447 has no descriptor'),
    "cpt-twice": (parse_cpt, "cpt.txt", "99213\tSAMPLE\n99213\tAGAIN\n",
                  'cpt.txt line 2, column "code": 99213 is listed twice (first on line 1)'),
    "mue-units": (parse_mue, "mue.csv", MUE_HEAD + MUE_ROWS + "72129,ten,1 Line Edit,x\n",
                  'mue.csv line 7, column "MUE Value": "ten" is not a whole number'),
    "mue-adjudication": (parse_mue, "mue.csv", MUE_HEAD + "J1100,100,4 Per Month,x\n",
                         'mue.csv line 4, column "MUE Adjudication Indicator": "4 Per Month" does not start '
                         'with an indicator 1, 2 or 3'),
    "mue-code": (parse_mue, "mue.csv", MUE_HEAD + MUE_ROWS + "J11,100,1 Line Edit,x\n",
                 'mue.csv line 7, column "HCPCS/CPT Code": "J11" is not a CPT or HCPCS code'),
    "mue-header": (parse_mue, "mue.csv", "HCPCS/CPT Code,MUE Rationale\nJ1100,x\n",
                   'mue.csv: the header (line 1) has no "MUE Value" column'),
    "ptp-modifier": (parse_ptp, "ptp.txt", PTP_HEAD + PTP_ROW.replace("\t1\t", "\t3\t"),
                     'ptp.txt line 3, column "Modifier": "3" is not a modifier indicator (0, 1 or 9)'),
    "ptp-effective": (parse_ptp, "ptp.txt", PTP_HEAD + PTP_ROW.replace("20240101", "2024011"),
                      'ptp.txt line 3, column "Effective Date": "2024011" is not a date (YYYYMMDD)'),
    "ptp-deletion": (parse_ptp, "ptp.txt", PTP_HEAD + PTP_ROW.replace("*", "20241331"),
                     'ptp.txt line 3, column "Deletion Date": "20241331" is not a date (YYYYMMDD)'),
    "ptp-prior": (parse_ptp, "ptp.txt", PTP_HEAD + PTP_ROW.replace("\t\t", "\tY\t"),
                  'ptp.txt line 3, column "Prior to 1996": "Y" is neither "*"'),
    "ptp-column2": (parse_ptp, "ptp.txt", PTP_HEAD + PTP_ROW.replace("72128", "7212"),
                    'ptp.txt line 3, column "Column 2": "7212" is not a CPT or HCPCS code'),
    "ptp-fields": (parse_ptp, "ptp.txt", PTP_HEAD + "62303\t72128\t\t20240101\n",
                   "ptp.txt line 3: has 4 tab-separated fields"),
    "ptp-not-an-edit": (parse_ptp, "ptp.txt", PTP_HEAD + PTP_ROW + "End of file\n",
                        'ptp.txt line 4, column "Column 1": "End of file" is not a code, so this is not an edit row'),
    "ptp-empty": (parse_ptp, "ptp.txt", PTP_HEAD, "ptp.txt line 1: no edit row"),
    "rvu-bilateral": (parse_rvu, "rvu.csv", RVU_HEAD + RVU_ROW.replace(",2,1,", ",2,X,"),
                      'rvu.csv line 2, column "BILAT SURG": "X" is not a one-digit indicator'),
    "rvu-status": (parse_rvu, "rvu.csv", RVU_HEAD + RVU_ROW.replace(",A,", ",,"),
                   'rvu.csv line 2, column "STATUS CODE": "" is not a one-character status code'),
    "rvu-global": (parse_rvu, "rvu.csv", RVU_HEAD + RVU_ROW.replace("000", "9O"),
                   'rvu.csv line 2, column "GLOB DAYS": "9O" is not a global period'),
    "rvu-header": (parse_rvu, "rvu.csv", RVU_HEAD.replace("TEAM SURG", "OTHER") + RVU_ROW,
                   'rvu.csv: the header (line 1) has no "TEAM SURG" column'),
}


def fixed(code, seq, rec, long="", short="", added="", effective="", ended="", action=""):
    """One 320-character HCPCS record, laid out as the CMS record layout places the fields."""
    line = f"{code:<5}{seq:05d}{rec}{long:<80}{short:<28}".ljust(268)
    return f"{line}{added:<8}{effective:<8}{ended:<8}{action:<1}".ljust(320)


HCPCS_BAD = [
    ([fixed("A0021", 100, "5", "SAMPLE")], 'hcpcs.txt line 1, column "record id (column 11)": "5" is not a record id'),
    ([fixed("A0021", 100, "3", "SAMPLE", "S", "20000101"), fixed("A0022", 200, "4", "more")],
     'hcpcs.txt line 2, column "record id (column 11)": continues the description of A0022'),
    ([fixed("A0021", 100, "3", "SAMPLE", "S", "20251301")],
     'hcpcs.txt line 1, column "add date (columns 269-276)": "20251301" is not a date (YYYYMMDD)'),
    ([fixed("A0021", 100, "3", "SAMPLE", "S", "20000101", "2000010", "", "N")],
     'hcpcs.txt line 1, column "action effective date (columns 277-284)": "2000010" is not a date'),
    ([fixed("12345", 100, "3", "SAMPLE")],
     'hcpcs.txt line 1, column "HCPC (columns 1-5)": "12345" is not a HCPCS Level II code'),
    (["A0021001"], "hcpcs.txt line 1: is 8 characters long"),
    ([fixed("A0021", 100, "3", "SAMPLE"), fixed("A0021", 100, "4", "again")],
     'hcpcs.txt line 2, column "sequence number (columns 6-10)": sequence number 00100 does not follow 00100'),
]


@pytest.mark.parametrize("parse, name, text, message", BAD.values(), ids=BAD.keys())
def test_a_bad_row_is_named_by_file_line_and_column(tmp_path, parse, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ImportFileError) as caught:
        parse(path)
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize("lines, message", HCPCS_BAD)
def test_a_bad_hcpcs_record_is_named_by_line_and_columns(tmp_path, lines, message):
    path = tmp_path / "hcpcs.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportFileError) as caught:
        parse_hcpcs(path)
    assert str(caught.value).startswith(message), str(caught.value)


def test_a_bad_date_in_the_hcpcs_csv_names_its_column(tmp_path):
    path = tmp_path / "hcpcs.csv"
    good = HCPCS_CSV.read_text()
    path.write_text(good + "Q9999,00100,3,SAMPLE,SAMPLE,,,,20000101,20000101,2024-02-30,D\n")
    with pytest.raises(ImportFileError, match=r'hcpcs.csv line 12, column "TERM_DT": "2024-02-30" is not a date'):
        parse_hcpcs(path)
    path.write_text(good.replace(",ACTION_CD", ",ACTION"))
    with pytest.raises(ImportFileError, match="hcpcs.csv line 2: the header has no ACTION_CD column"):
        parse_hcpcs(path)


# importer, good file, its table, rows per record, a bad last line for that layout
EACH_KIND = {
    "ncci-ptp": (import_ptp, PTP_PRACTITIONER, PtpEdit, 1, "62303\tx\t\t20240101\t*\t1\tx"),
    "mue": (import_mue, MUE_PRACTITIONER, Mue, 1, "62303,ten,1 Line Edit,x"),
    "pfs-rvu": (import_pfs_rvu, RVU, FeeRule, 1, "20610,,SAMPLE,A,000,2,X,1,0,0"),
    "cpt": (import_cpt, CPT_LONG, Descriptor, 1, "99214\t"),
    "hcpcs": (import_hcpcs, HCPCS_FIXED, Descriptor, 2, "   AA00100X"),  # a long and a short descriptor
}


@pytest.mark.parametrize("importer, good, table, per_record, bad_line", EACH_KIND.values(), ids=EACH_KIND.keys())
def test_nothing_is_written_when_the_last_row_is_bad(engine, tmp_path, importer, good, table, per_record, bad_line):
    first = load(engine, importer, good)
    before = (count(engine, table), count(engine, Release), count(engine, Code))
    bad = tmp_path / good.name  # the same name, so the same release would be replaced
    bad.write_text(good.read_text() + bad_line + "\n")
    with pytest.raises(ImportFileError, match=f"{good.name} line "):
        load(engine, importer, bad)
    assert (count(engine, table), count(engine, Release), count(engine, Code)) == before
    assert len(rows_of(engine, table, first.release.id)) == first.rows * per_record


@pytest.mark.parametrize("importer, path, table, per_record, _", EACH_KIND.values(), ids=EACH_KIND.keys())
def test_reimporting_the_same_release_replaces_it_rather_than_duplicating(engine, importer, path, table, per_record, _):
    first = load(engine, importer, path)
    codes = count(engine, Code)
    second = load(engine, importer, path)
    assert second.release.name == first.release.name and second.release.id > first.release.id
    assert count(engine, table) == first.rows * per_record
    assert count(engine, Code) == codes  # the release's new codes were replaced too, not duplicated or lost
    with Session(engine) as session:
        assert session.get(Release, first.release.id) is None
        assert session.execute(select(func.count()).where(Release.kind == first.release.kind)).scalar_one() == 1


def test_an_effective_that_is_not_a_year_or_quarter_is_refused(sqlite_engine):
    with pytest.raises(Exception, match="is not a year or quarter"):
        load(sqlite_engine, import_ptp, PTP_PRACTITIONER, effective="spring")


@pytest.mark.parametrize("name, effective", [
    ("HCPC2025_JAN_ANWEB_12172024.txt", "2025Q1"), ("MCR_MUE_PractitionerServices_Eff_04-01-2025.csv", "2025Q2"),
    ("PPRRVU25_OCT.csv", "2025Q4"), ("ptp-2025q3.txt", "2025Q3"), ("cpt_long_2025.txt", "2025"),
    ("ccipra-v312r0-f1.txt", None), ("DECODE_2024.csv", "2024"),
])
def test_the_effective_quarter_is_guessed_from_cms_file_names(name, effective):
    assert guess_effective(name) == effective


# -- the command line ------------------------------------------------------------------------------
