"""Find codes by words: full-text search over titles, our descriptions and licensed descriptors.

The index is the `code_search` table (migration 0003): FTS5 with porter stemming on SQLite, a
weighted tsvector with a GIN index on PostgreSQL. Loaders call `reindex` for the systems they
changed, in their own transaction, so the index never disagrees with the codes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlmodel import Session

from .codeindex import CPT, HCPCS, ICD10CM

SYSTEMS = (CPT, HCPCS, ICD10CM)
MAX_TERMS = 16
_WORD = re.compile(r"[a-z0-9]+")
_CODE_LIKE = re.compile(r"(?i)^(?:\d{3,5}[A-Z0-9]?|[A-Z]\d{2,4}[A-Z0-9]?|[A-Z]\d{2}\.?[A-Z0-9]{0,4})$")
# Words that say nothing about which code is meant: greetings, the words of a coding question.
STOPWORDS = frozenset("""
a about all also am an and any are as at be been but by can could did do does dr for from get
had has have hello hi how i if in into is it its me my no not of on or our please should so than
thank thanks that the their them then there these they this to was we were what when where which
who why will with would you your code codes coding coder cpt hcpcs icd icd10 icd10cm cm dx bill
billed billing use used using question ask asking need know correct right best help team regards
best office patient pt year years old yo male female man woman given medicare medicaid payer
insurance commercial claim claims today
""".split())
# What askers write for what the code titles say.
SYNONYMS = {
    "flu": ("influenza",), "shot": ("injection", "vaccine"), "shots": ("injection", "vaccine"),
    "xray": ("x-ray", "radiologic"), "ekg": ("electrocardiogram", "ecg"), "ecg": ("electrocardiogram",),
    "epidural": ("epidural", "interlaminar"), "pt": ("therapeutic",), "physical": ("therapeutic",),
    "stitches": ("repair",), "sutures": ("repair",), "laceration": ("repair", "laceration"),
    "checkup": ("preventive",), "physical exam": ("preventive",), "bp": ("blood pressure",),
    "awv": ("wellness",), "welcome": ("preventive",), "covid": ("covid", "sars"),
    "lumbar": ("lumbosacral",), "lumbosacral": ("lumbar",),
}
# A short word matches only itself ("flu" is not "fluid"); a longer one also words it begins.
PREFIX_FROM = 4
# A word in more rows of the index than this ("left", "right", "initial": ICD-10-CM says them
# thousands of times) says little about which code a question means, and made most of the time of
# a search for suggestions (60 of 80 ms for one question): suggest leaves it out of the search,
# though a suggestion holding it still counts it as a word matched.
COMMON_ROWS = 2000
COMMON_MEMO = 10_000
_COMMON: dict[tuple[str, str], bool] = {}  # (database, word): whether it is common there


@dataclass
class Hit:
    code: str
    system: str
    title: str
    score: float  # higher is better; comparable only within one search


def terms(query: str) -> list[str]:
    """The words worth searching for, in order, without stopwords or repeats."""
    seen: list[str] = []
    for word in _WORD.findall(query.lower()):
        if len(word) > 1 and word not in STOPWORDS and word not in seen:
            seen.append(word)
    return seen[:MAX_TERMS]


def _alternatives(word: str) -> list[str]:
    return [word, *(w for w in SYNONYMS.get(word, ()) if w != word)]


def _fts_term(word: str) -> str:
    """One word for FTS5: quoted (so no operator gets through), a prefix when long enough."""
    parts = [p for p in _WORD.findall(word)]
    quoted = '"' + " ".join(parts) + '"'
    return quoted + ("*" if len(word) >= PREFIX_FROM and len(parts) == 1 else "")


def _pg_term(word: str) -> str:
    parts = _WORD.findall(word)
    if len(parts) > 1:
        return "(" + " <-> ".join(parts) + ")"
    return word + (":*" if len(word) >= PREFIX_FROM else "")


def _holds(document: set[str], word: str) -> bool:
    return any(w in document or (len(w) >= PREFIX_FROM and any(d.startswith(w) for d in document))
               for alt in _alternatives(word) for w in _WORD.findall(alt)[:1])


def search(session: Session, query: str, limit: int = 20, systems: tuple[str, ...] = SYSTEMS) -> list[Hit]:
    """Codes ranked by how well their words match the query. A query that looks like a code
    ("6230", "m54.1") lists the codes starting with it first; then codes holding every word;
    then, to fill the list, codes holding some of them."""
    found: dict[tuple[str, str], float] = {}
    stripped = query.strip()
    if _CODE_LIKE.match(stripped):
        for system, code, score in _by_number(session.connection(), stripped.upper(), limit, systems):
            found.setdefault((system, code), score)
    words = terms(query)
    for every in (True, False):
        if not words or len(found) >= limit or (not every and len(words) == 1):
            break
        for system, code, score, _ in _ranked(session.connection(), words, every, limit, systems):
            found.setdefault((system, code), score)
    return _with_titles(session.connection(), list(found.items())[:limit])


def suggest(session: Session, question: str, limit: int = 5) -> list[Hit]:
    """Codes that may fit a question that names a procedure or diagnosis but no code: the best
    matches holding at least two of its words (or its only word), for a reviewer to confirm.
    Codes that hold more of the question's words come first."""
    words = terms(question)
    if not words:
        return []
    need = min(2, len(words))
    scored = []
    searched = _informative(session.connection(), words)
    for system, code, score, document in _ranked(session.connection(), searched, len(searched) == 1, limit * 8,
                                                 SYSTEMS):
        present = set(_WORD.findall(document.lower()))
        matched = sum(1 for w in words if _holds(present, w))
        if matched >= need:
            scored.append((matched, score, (system, code)))
    scored.sort(key=lambda m: (-m[0], -m[1]))
    return _with_titles(session.connection(), [(key, score) for _, score, key in scored[:limit]])


def _informative(connection: Connection, words: list[str]) -> list[str]:
    """The words not common in the index (all of them if every one is). Whether a word is common
    is asked once per database and process: a count that stops past COMMON_ROWS. (A release
    loaded since may change a word's count a little; it only decides what is searched.)"""
    database = str(connection.engine.url)
    kept = []
    for word in words:
        common = _COMMON.get((database, word))
        if common is None:
            if len(_COMMON) >= COMMON_MEMO:
                _COMMON.clear()
            common = _COMMON[(database, word)] = _rows_holding(connection, word, COMMON_ROWS + 1) > COMMON_ROWS
        if not common:
            kept.append(word)
    return kept or words


def _rows_holding(connection: Connection, word: str, most: int) -> int:
    """How many rows of the index hold the word (or one of its alternatives), counted up to `most`."""
    if connection.dialect.name == "sqlite":
        match = "code_search MATCH :q"
        query = " OR ".join(_fts_term(a) for a in _alternatives(word))
    else:
        match = "doc @@ to_tsquery('english', :q)"
        query = " | ".join(_pg_term(a) for a in _alternatives(word))
    sql = f"SELECT count(*) FROM (SELECT 1 FROM code_search WHERE {match} LIMIT :n) AS held"
    return connection.execute(text(sql), dict(q=query, n=most)).scalar()


def _with_titles(connection: Connection, ranked: list[tuple[tuple[str, str], float]]) -> list[Hit]:
    codes = {code for (_, code), _ in ranked}
    if not codes:
        return []
    # Both columns of the primary key: with the code alone the database read the whole table.
    query = text("SELECT system, code, title FROM code WHERE system IN :systems AND code IN :codes").bindparams(
        bindparam("systems", expanding=True), bindparam("codes", expanding=True))
    systems = sorted({system for (system, _), _ in ranked})
    titles = {(s, c): t for s, c, t in connection.execute(query, dict(systems=systems, codes=sorted(codes)))}
    return [Hit(code, system, titles.get((system, code), ""), round(score, 4)) for (system, code), score in ranked]


def _by_number(connection: Connection, token: str, limit: int, systems) -> list[tuple[str, str, float]]:
    """Codes that start with what was typed; ICD-10-CM codes also when typed without the dot."""
    prefixes = {token}
    if len(token) > 3 and token[0].isalpha() and "." not in token and token[1:3].isdigit():
        prefixes.add(f"{token[:3]}.{token[3:]}")  # M5416 -> M54.16
    query = text("SELECT system, code FROM code WHERE code LIKE :p ESCAPE '!' AND system IN :systems "
                 "ORDER BY length(code), code LIMIT :n").bindparams(bindparam("systems", expanding=True))
    out = []
    for prefix in sorted(prefixes):
        like = prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
        rows = connection.execute(query, dict(p=like, systems=list(systems), n=limit)).all()
        out += [(system, code, 1000.0 - len(code)) for system, code in rows]
    return sorted(out, key=lambda r: (-r[2], r[1]))[:limit]


def _ranked(connection: Connection, words: list[str], every: bool, limit: int,
            systems) -> list[tuple[str, str, float, str]]:
    """One full-text query, every word (AND) or any (OR), each word also as a prefix:
    (system, code, score, the matched text), best first."""
    params = dict(n=limit, systems=list(systems))
    if connection.dialect.name == "sqlite":
        groups = ["(" + " OR ".join(_fts_term(a) for a in _alternatives(w)) + ")" for w in words]
        params["q"] = (" AND " if every else " OR ").join(groups)
        # FTS5's own rank column, set to the weighted bm25 for this query, then ORDER BY rank: the
        # same scores and order as ordering by bm25(...) as an expression, in half the time or less
        # (FTS5 works out each row's rank once, in its own sort).
        sql = ("SELECT system, code, -min(rank), group_concat(title || ' ' || body, ' ') FROM ("
               " SELECT system, code, title, body, rank FROM code_search"
               " WHERE code_search MATCH :q AND rank MATCH 'bm25(0.0, 0.0, 4.0, 1.0)' AND system IN :systems"
               " ORDER BY rank LIMIT :n * 4)"
               " GROUP BY system, code ORDER BY min(rank) LIMIT :n")
    else:
        groups = ["(" + " | ".join(_pg_term(a) for a in _alternatives(w)) + ")" for w in words]
        params["q"] = (" & " if every else " | ").join(groups)
        sql = ("SELECT system, code, max(ts_rank(doc, q)), string_agg(title || ' ' || coalesce(body, ''), ' ')"
               " FROM code_search, to_tsquery('english', :q) AS q"
               " WHERE doc @@ q AND system IN :systems GROUP BY system, code ORDER BY 3 DESC LIMIT :n")
    query = text(sql).bindparams(bindparam("systems", expanding=True))
    return [(system, code, float(score), document) for system, code, score, document in connection.execute(query, params)]


def reindex(session: Session, systems: tuple[str, ...] = SYSTEMS) -> int:
    """Rebuild the index for some systems from the code and descriptor tables; returns the rows
    indexed. Runs in the caller's transaction."""
    return reindex_connection(session.connection(), systems)


def reindex_connection(connection: Connection, systems: tuple[str, ...] = SYSTEMS) -> int:
    chosen = dict(systems=list(systems))
    expanding = bindparam("systems", expanding=True)
    connection.execute(text("DELETE FROM code_search WHERE system IN :systems").bindparams(expanding), chosen)
    if connection.dialect.name == "sqlite":
        columns, values = "system, code, title, body", "{system}, {code}, {title}, {body}"
    else:
        columns = "system, code, title, body, doc"
        values = ("{system}, {code}, {title}, {body}, setweight(to_tsvector('english', {title}), 'A') || "
                  "setweight(to_tsvector('english', {body}), 'B')")
    sources = [
        ("c.system", "c.code", "c.title", "coalesce(c.description, '') || ' ' || coalesce(f.title, '')",
         "code c LEFT JOIN code_family f ON f.key = c.family", "c.system"),
        ("d.system", "d.code", "''", "d.text", "code_descriptor d", "d.system"),
    ]
    total = 0
    for system, code, title, body, source, where in sources:
        select_part = values.format(system=system, code=code, title=title, body=body)
        sql = f"INSERT INTO code_search ({columns}) SELECT {select_part} FROM {source} WHERE {where} IN :systems"
        total += connection.execute(text(sql).bindparams(expanding), chosen).rowcount or 0
    return total
