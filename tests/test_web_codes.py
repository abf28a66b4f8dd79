"""Code lookup in the desk: a typed code opens its page, words search, and every page names its sources."""
import pytest

from websupport import add_people, signed_in, web_settings


@pytest.fixture
def alice(db_url, engine):
    add_people(engine, {"alice": "reviewer"})
    return signed_in(web_settings(db_url), engine, "alice")


@pytest.mark.parametrize("typed, page", [("99213", "/codes/CPT/99213"), ("j1100", "/codes/HCPCS/J1100"),
                                         ("m5416", "/codes/ICD-10-CM/M54.16"), ("M54.16", "/codes/ICD-10-CM/M54.16")])
def test_a_typed_code_opens_its_page(alice, typed, page):
    response = alice.get("/codes", params={"q": typed})
    assert response.status_code == 303 and response.headers["location"] == page


def test_words_find_codes_ranked_with_links(alice):
    html = alice.get("/codes", params={"q": "lumbar myelography"}).text
    assert 'href="/codes/CPT/62304"' in html or 'href="/codes/CPT/62303"' in html


def test_a_search_with_markup_is_escaped_and_finds_nothing(alice):
    html = alice.get("/codes", params={"q": "<script>alert(1)</script>"}).text
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def test_a_cpt_code_page_shows_what_is_known_and_the_source(alice):
    html = alice.get("/codes/CPT/99213").text
    assert "<h1>99213 <small>CPT</small></h1>" in html
    assert "starter" in html.lower() and "not authoritative" in html
    assert 'href="/codes/CPT/99214"' in html  # related codes link to their own pages
    assert "Data sets loaded:" in html


def test_an_icd_code_page_shows_billable_and_its_notes(alice):
    html = alice.get("/codes/ICD-10-CM/M54.16").text
    assert "M54.16" in html and "billable" in html and 'href="/codes/ICD-10-CM/M54.1"' in html


def test_unknown_codes_and_systems_are_404(alice):
    assert alice.get("/codes/CPT/00000").status_code == 404
    assert alice.get("/codes/NOPE/99213").status_code == 404


def test_a_code_page_shows_the_edits_in_force_with_their_releases(engine, alice):
    from pathlib import Path

    from sqlmodel import Session

    from consultant.importers import import_mue, import_ptp

    files = Path(__file__).resolve().parent / "codefiles"
    with Session(engine) as session:
        import_ptp(session, [files / "ptp_practitioner_2025q2.txt"])
        import_mue(session, files / "MUE_PractitionerServices_Eff_04-01-2025.csv")
        session.commit()
    html = alice.get("/codes/CPT/62303").text
    assert "NCCI procedure-to-procedure edits in force" in html and "<td>72128</td>" in html
    assert "NCCI PTP practitioner 2025Q2" in html
    assert "at most 1 units (practitioner)" in html and "MUE practitioner 2025Q2" in html
