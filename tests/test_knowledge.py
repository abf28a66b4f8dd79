"""What the service knows about a code and what a draft does with it: sources, related codes, checks.

The two questions of the "Code knowledge base" issue run through the real screen, parse and draft
stages with the sample code files of tests/codefiles/ loaded by the real importers.
"""
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import Session

from consultant.importers import import_cpt, import_mue, import_pfs_rvu, import_ptp
from consultant.knowledge import everything
from consultant.lookup import Lookup, Related, rank_related
from consultant.models import Question, Reply
from support import drafted, make_settings, question_bytes

FILES = Path(__file__).resolve().parent / "codefiles"
PTP = FILES / "ptp_practitioner_2025q2.txt"
MUE = FILES / "MUE_PractitionerServices_Eff_04-01-2025.csv"
RVU = FILES / "PPRRVU25_APR_sample.csv"
CPT_LONG = FILES / "cpt_long_2025.txt"


def load_all(engine):
    with Session(engine) as session:
        import_ptp(session, [PTP])
        import_mue(session, MUE)
        import_pfs_rvu(session, RVU)
        import_cpt(session, CPT_LONG)
        session.commit()


def facts_of(engine, system, code, today=date(2025, 6, 1)):
    with Session(engine) as session:
        lookup = Lookup(session)
        return everything(lookup, lookup.facts(system, code), today=today)


def test_a_starter_code_says_its_words_are_ours_and_which_data_sets_are_missing(engine):
    data = facts_of(engine, "CPT", "62303")
    assert data["starter"] and "starter data in our own words" in data["starter_note"]
    assert data["source"].startswith("CaseConsultant starter set")
    assert data["ptp"] == dict(loaded=False, as_column1=0, as_column2=0, pairs=[])
    assert data["mue"] == [] and data["fee_schedule"] == [] and data["descriptors"] == []


def test_every_loaded_fact_about_a_code_names_its_release(engine):
    load_all(engine)
    data = facts_of(engine, "CPT", "62303")
    assert data["ptp"]["as_column1"] == 2 and data["ptp"]["as_column2"] == 0
    pairs = {p["column2"]: p for p in data["ptp"]["pairs"]}
    assert pairs["72128"]["indicator"] == "1" and "59" in pairs["72128"]["meaning"]
    assert pairs["72128"]["source"] == "NCCI PTP practitioner 2025Q2"
    [mue] = data["mue"]
    assert (mue["units"], mue["adjudication"], mue["source"]) == (1, "2 Date of Service Edit: Policy",
                                                                   "MUE practitioner 2025Q2")
    fees = facts_of(engine, "CPT", "72128")["fee_schedule"]
    assert [(f["modifier"], f["global_days"]) for f in fees] == [(None, "XXX"), ("26", "XXX")]
    assert fees[1]["modifier_meaning"].startswith("The professional part") and fees[0]["source"].startswith("PFS")
    knee = facts_of(engine, "CPT", "27447")
    assert knee["descriptors"][0]["kind"] == "long" and knee["descriptors"][0]["source"] == "CPT long descriptors 2025"


def test_a_deleted_pair_is_not_listed_as_in_force(engine):
    load_all(engine)
    assert facts_of(engine, "CPT", "99213", today=date(2025, 6, 1))["ptp"]["as_column1"] == 0
    assert facts_of(engine, "CPT", "99213", today=date(2019, 6, 1))["ptp"]["as_column1"] == 1


def test_related_codes_come_nearest_siblings_first_then_add_ons_then_see_also():
    siblings = [Related(c, "CPT", "", "sibling") for c in ("62302", "62304", "62305", "62284", "62270")]
    linked = [Related("72129", "CPT", "", "see-also"), Related("62305", "CPT", "", "see-also"),
              Related("77003", "CPT", "", "add-on")]
    ranked = [r.code for r in rank_related(siblings, linked)]
    assert ranked == ["62302", "62304", "62305", "62284", "77003", "72129", "62270"]


def test_62303_lists_its_family_neighbours_as_related(engine):
    related = [r["code"] for r in facts_of(engine, "CPT", "62303")["related"]]
    assert related[:3] == ["62302", "62304", "62305"]


def draft_of(engine, body, n=1):
    settings = make_settings(str(engine.url))
    qid = drafted(engine, settings, question_bytes(n, body))
    with Session(engine) as session:
        question = session.get(Question, qid)
        reply = session.execute(select(Reply).where(Reply.question_id == qid)).scalar_one()
        return question, reply


def test_what_is_62303_drafts_an_answer_naming_its_related_codes(engine):
    question, reply = draft_of(engine, "What is CPT 62303 and what are the related codes?")
    assert question.status == "drafted" and reply.kind == "answer"
    for part in (reply.text, reply.html):
        assert "Myelogram, thoracic" in part
        assert all(code in part for code in ("62302", "62304", "62305"))
    sources = {s["code"]: s for s in question.analysis["sources"]}
    assert sources["62303"]["starter"] and question.analysis["missing"]  # told to the reviewer...
    assert "NCCI" not in reply.text  # ...not to the asker


def test_a_bundled_pair_on_the_date_of_service_drafts_a_warning_with_the_indicator_explained(engine):
    load_all(engine)
    question, reply = draft_of(engine, "Can I bill 62303 with 72128 with modifier 59, DOS 03/14/2025?")
    assert "Things to check" in reply.text
    text = " ".join(reply.text.split())
    assert "72128 is bundled into 62303" in text and "59 or XE/XS/XP/XU" in text and "(indicator 1)" in text
    assert "72128 is bundled into 62303" in " ".join(reply.html.split())
    [pair] = [w for w in question.analysis["warnings"] if w["kind"] == "pair"]
    assert pair["source"] == "NCCI PTP practitioner 2025Q2" and pair["detail"]["indicator"] == "1"
    assert question.analysis["date_of_service"] == "2025-03-14" and question.analysis["dos_from_text"]


def test_the_same_pair_before_the_edit_took_effect_drafts_no_warning(engine):
    load_all(engine)
    question, reply = draft_of(engine, "Can I bill 62303 with 72128 with modifier 59, DOS 03/14/2023?")
    assert [w for w in question.analysis["warnings"] if w["kind"] == "pair"] == []
    assert "is bundled into" not in reply.text and "Things to check" not in reply.text


def test_units_over_the_mue_are_a_warning_in_the_draft(engine):
    load_all(engine)
    question, reply = draft_of(engine, "We gave 72128 x3 on one line, DOS 05/01/2025. OK?")
    [units] = [w for w in question.analysis["warnings"] if w["kind"] == "units"]
    assert units["detail"] == dict(asked=3, limit=2, adjudication="1 Line Edit", setting="practitioner",
                                   rationale="Sample rationale: clinical data")
    assert "3 units of 72128" in " ".join(reply.text.split())


def test_a_question_that_names_a_procedure_but_no_code_gets_suggestions_to_confirm(engine):
    question, reply = draft_of(engine, "What code do I use for a thoracic myelogram?")
    assert reply.kind == "no_codes"
    assert question.analysis["suggestions"][0]["code"] == "62303"
    assert "62303" in reply.text and "may fit what you describe" in reply.text


# -- the command line ------------------------------------------------------------------------------

def run(*args, env):
    proc = subprocess.run([sys.executable, "-m", "consultant", *args], env=dict(os.environ, **env),
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def consultant(*args, env):
    proc = run(*args, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture
def cli_env(sqlite_url, tmp_path):
    return {"CONSULTANT_DATABASE__URL": sqlite_url, "CONSULTANT_PATHS__VAR": str(tmp_path), "COLUMNS": "200"}


def test_codes_search_ranks_codes_by_words(cli_env):
    hits = json.loads(consultant("codes", "search", "thoracic myelogram", "--json", env=cli_env))
    assert hits[0] == dict(code="62303", system="CPT", title="Myelogram, thoracic", score=hits[0]["score"])
    table = consultant("codes", "search", "thoracic myelogram", "-n", "3", env=cli_env)
    assert "62303" in table and "Myelogram, thoracic" in table and len(table.splitlines()) < 12
    assert "no code matches" in consultant("codes", "search", "zzzzqqq", env=cli_env)


def test_codes_show_prints_every_fact_with_its_source(cli_env):
    consultant("codes", "import", "ncci-ptp", str(PTP), env=cli_env)
    consultant("codes", "import", "mue", str(MUE), env=cli_env)
    shown = consultant("codes", "show", "62303", env=cli_env)
    assert "starter data in our own words" in shown
    assert "NCCI PTP edits in force: 2 with 62303 as column 1" in shown
    assert "72128" in shown and "NCCI PTP practitioner" in shown
    assert "MUE (practitioner): 1 units, 2 Date of Service Edit: Policy [MUE practitioner" in shown
    data = json.loads(consultant("codes", "show", "62303", "--json", env=cli_env))
    assert data["ptp"]["loaded"] and data["mue"][0]["source"].startswith("MUE practitioner")


def test_inspect_reports_warnings_with_sources_and_suggestions_with_scores(cli_env, tmp_path):
    consultant("codes", "import", "ncci-ptp", str(PTP), env=cli_env)
    pair = tmp_path / "pair.eml"
    pair.write_bytes(question_bytes(1, "Can I bill 62303 with 72128 with modifier 59, DOS 03/14/2025?"))
    words = tmp_path / "words.eml"
    words.write_bytes(question_bytes(2, "What code do I use for a thoracic myelogram?"))
    first, second = [json.loads(line) for line in
                     consultant("inspect", "--json", str(pair), str(words), env=cli_env).splitlines()]
    [warning] = first["warnings"]
    assert (warning["kind"], warning["codes"], warning["source"]) == ("pair", ["62303", "72128"],
                                                                      "NCCI PTP practitioner 2025Q2")
    assert first["suggestions"] == [] and first["date_of_service"] == "2025-03-14"
    assert second["codes"] == [] and second["suggestions"][0]["code"] == "62303"
    assert all(isinstance(s["score"], float) for s in second["suggestions"])


def test_codes_import_loads_files_and_codes_releases_lists_them(cli_env):
    proc = run("codes", "import", "ncci-ptp", str(PTP), "--effective", "2025Q2", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    assert '5 practitioner PTP edit pairs loaded as release' in proc.stdout
    proc = run("codes", "import", "hcpcs", str(FILES / "HCPC2025_JAN_sample.csv"), env=cli_env)
    assert "4 HCPCS codes loaded" in proc.stdout and "2 modifier records skipped" in proc.stdout
    proc = run("codes", "import", "mue", str(FILES / "MUE_DMESupplier_2025Q2.csv"), "--setting", "dme", env=cli_env)
    assert "2 dme MUE limits loaded" in proc.stdout
    listing = json.loads(run("codes", "releases", "--json", env=cli_env).stdout)
    by_kind = {r["kind"]: r for r in listing}
    assert {"starter", "icd10cm", "ncci-ptp", "hcpcs", "mue"} <= set(by_kind)
    ptp = by_kind["ncci-ptp"]
    assert (ptp["name"], ptp["file_name"], ptp["effective"], ptp["rows"], ptp["in_force"]) == (
        "NCCI PTP practitioner 2025Q2", PTP.name, "2025Q2", 5, True)
    assert by_kind["hcpcs"]["effective"] == "2025Q1" and by_kind["hcpcs"]["loaded_at"]
    table = run("codes", "releases", env=cli_env).stdout
    assert "ncci-ptp" in table and "releases" in table


def test_codes_import_of_a_bad_file_prints_one_sentence_and_exits_1(cli_env, tmp_path):
    bad = tmp_path / "mue.csv"
    bad.write_text('"SAMPLE DATA"\n"note"\nHCPCS/CPT Code,MUE Value,MUE Adjudication Indicator,MUE Rationale\n'
                   "J1100,100,3 Date of Service Edit: Clinical,x\n62303,1,2 Date of Service Edit: Policy,x\n"
                   "72128,2,1 Line Edit,x\n72129,ten,1 Line Edit,x\n")
    proc = run("codes", "import", "mue", str(bad), env=cli_env)
    assert proc.returncode == 1
    assert 'mue.csv line 7, column "MUE Value": "ten" is not a whole number' in proc.stderr
    proc = run("codes", "import", "cpt", str(tmp_path / "missing.txt"), env=cli_env)
    assert proc.returncode == 1 and "no such file" in proc.stderr
    listing = json.loads(run("codes", "releases", "--json", env=cli_env).stdout)
    assert {r["kind"] for r in listing} == {"starter", "icd10cm"}
