"""The code finder gives exactly what the reference finder gave (tests/extractcorpus.py says which
one and how the corpus was made): every field of every FoundCode and the unattached modifiers, in
order, for the mailbox fixtures, the texts of the finder's own tests and 10,000 seeded random texts,
each read with an empty, a small and a wide code index."""
from __future__ import annotations

import pytest

from consultant.extract import find_codes
from extractcorpus import RANDOM_TEXTS, indexes, load, outcome


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return load()


def test_the_corpus_covers_fixtures_test_texts_and_random_texts(corpus):
    groups = [case["group"] for case in corpus]
    assert groups.count("fixtures") >= 30 and groups.count("tests") >= 300
    assert groups.count("random") == RANDOM_TEXTS
    random_found = [case["expected"]["wide"][0] for case in corpus if case["group"] == "random"]
    # The random texts exercise what hangs off a code, not only bare codes.
    fields = {"modifiers": 3, "units": 4, "range": 7}
    for name, at in fields.items():
        assert sum(1 for codes in random_found for code in codes if code[at] not in ([], 1, None)) > 1000, name


@pytest.mark.parametrize("group", ["fixtures", "tests", "random"])
def test_the_finder_gives_what_the_reference_gave(corpus, group):
    named = indexes()
    wrong = []
    for case in corpus:
        if case["group"] != group:
            continue
        for name, index in named.items():
            got = outcome(find_codes(case["text"], index, case["quoted"]))
            if got != case["expected"][name]:
                wrong.append((case["text"], case["quoted"], name, got, case["expected"][name]))
    assert not wrong, f"{len(wrong)} differ; the first (text, quoted, index, got, expected): {wrong[0]!r}"
