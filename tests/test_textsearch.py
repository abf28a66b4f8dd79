"""Finding codes by words: ranked full-text search on SQLite (FTS5) and PostgreSQL (tsvector)."""
from pathlib import Path

import pytest
from sqlmodel import Session

from consultant.codeload import load_starter
from consultant.importers import import_cpt
from consultant.textsearch import reindex, search, suggest, terms
from support import query_plans, recorded

FILES = Path(__file__).resolve().parent / "codefiles"


@pytest.fixture
def session(engine):
    with Session(engine) as session:
        yield session


def codes(hits):
    return [h.code for h in hits]


def test_words_find_the_code_whose_title_holds_them_all_first(session):
    hits = search(session, "thoracic myelogram")
    assert hits[0].code == "62303" and hits[0].title == "Myelogram, thoracic" and hits[0].system == "CPT"
    assert {"62302", "62304", "62305"} <= set(codes(hits))  # the rest of the family fills the list
    assert hits[0].score > hits[-1].score


def test_words_are_stemmed_and_matched_as_prefixes(session):
    assert "M54.5" in codes(search(session, "low back pains", limit=5))
    assert "62303" in codes(search(session, "myelogr thoracic", limit=5))


def test_what_askers_write_is_matched_to_what_titles_say(session):
    assert codes(search(session, "flu shot", limit=3))[0] == "G0008"  # influenza vaccine administration


def test_a_search_can_be_limited_to_procedures(session):
    hits = search(session, "sciatica", systems=("CPT", "HCPCS"))
    assert all(h.system in ("CPT", "HCPCS") for h in hits)
    assert search(session, "sciatica")[0].code == "M54.3"


@pytest.mark.parametrize("typed,first", [("6230", "62302"), ("m5416", "M54.16"), ("M54.1", "M54.1"),
                                         ("9921", "99211")])
def test_the_start_of_a_number_lists_the_codes_it_begins(session, typed, first):
    hits = search(session, typed)
    assert hits[0].code == first
    assert all(h.code.replace(".", "").upper().startswith(typed.replace(".", "").upper()) for h in hits[:3])


@pytest.mark.parametrize("hostile", ['"; DROP TABLE code; --', "NEAR(a b)", "*", "a OR", "title:x", "'", "\\",
                                     "x" * 5000, "(((", "!!&&||:*"])
def test_query_syntax_in_the_words_is_never_interpreted(session, hostile):
    search(session, hostile)  # no error
    assert search(session, "thoracic myelogram")[0].code == "62303"  # and the table is still there


def test_stopwords_and_greetings_are_not_search_terms():
    assert terms("Hi, what CPT code do I use for a Thoracic myelogram? Thanks!") == ["thoracic", "myelogram"]


def test_a_licensed_descriptor_is_searchable_once_imported(session):
    assert search(session, "arthroplasty") == []
    import_cpt(session, FILES / "cpt_long_2025.txt")
    session.commit()
    assert "27447" in codes(search(session, "SAMPLE knee joint"))


def test_reloading_a_release_leaves_no_stale_entries(session):
    before = len(search(session, "myelogram", limit=50))
    load_starter(session)
    load_starter(session)
    session.commit()
    assert len(search(session, "myelogram", limit=50)) == before
    assert reindex(session, ("CPT",)) > 400  # the starter CPT codes


def test_a_question_without_codes_gets_suggestions_that_hold_its_words(session):
    hits = suggest(session, "Hi team, what code do I use for a thoracic myelogram? Thanks, Jane")
    assert hits[0].code == "62303"
    assert all("myelogram" in h.title.lower() or "thoracic" in h.title.lower() for h in hits)


def test_a_question_about_nothing_codable_gets_no_suggestions(session):
    assert suggest(session, "Thanks so much for your help last week!") == []
    assert suggest(session, "Please call me back about the invoice, Jane") == []


def searched_for(session, question: str) -> tuple[list[str], list]:
    """The full-text query strings suggest() sent for a question, and its suggestions."""
    with recorded(session.get_bind()) as seen:
        hits = suggest(session, question)
    sent = [str(parameters) for statement, parameters in seen
            if "code_search" in statement and "LIMIT" in statement and "count(*)" not in statement]
    return sent, hits


def test_a_word_common_in_the_index_is_not_searched_but_still_counts_as_held(session, monkeypatch):
    from consultant import textsearch

    question = "What code is a thoracic myelogram on the left side?"
    _sent, before = searched_for(session, question)
    monkeypatch.setattr(textsearch, "_COMMON", {})
    monkeypatch.setattr(textsearch, "COMMON_ROWS", 100)  # "left" (16,000 rows) and "side" are left out
    [sent], hits = searched_for(session, question)
    assert "left" not in sent and "side" not in sent and "myelogram" in sent
    assert codes(hits)[0] == "62303" == codes(before)[0]
    # A question whose every word is common searches them all.
    monkeypatch.setattr(textsearch, "_COMMON", {})
    monkeypatch.setattr(textsearch, "COMMON_ROWS", 0)
    [sent], _hits = searched_for(session, question)
    assert "left" in sent and "myelogram" in sent


def test_suggestions_read_their_titles_by_primary_key_not_by_scanning_every_code(sqlite_engine):
    with recorded(sqlite_engine) as seen, Session(sqlite_engine) as session:
        hits = suggest(session, "Hi team, what code do I use for a thoracic myelogram? Thanks, Jane")
    titles = [(sql, params) for sql, params in seen if sql.startswith("SELECT system, code, title FROM code")]
    plan = query_plans(sqlite_engine, titles)
    assert hits and all(h.title for h in hits) and len(titles) == 1
    assert plan and not any("SCAN code" in line for line in plan), plan
