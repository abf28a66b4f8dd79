"""Look codes up in the database: titles, descriptions, families and related codes, with sources."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import bindparam, func, select
from sqlmodel import Session

from .codeindex import CPT, HCPCS, ICD10CM, CodeIndex
from .codetables import Code, Descriptor, Family, Relation, Release

RELATED_LIMIT = 8
# Facts (and rows) kept at most: a long-running worker asked about ever more codes starts afresh
# rather than growing without end (ICD-10-CM alone has about 100,000 codes).
CACHE_LIMIT = 20_000
_CODES_BY_SYSTEM = select(Code.system, func.count(), func.aggregate_strings(Code.code, "\n")).group_by(Code.system)
# One code's row, as plain columns: an ORM object (session.get) cost several times the query.
_CODE_ROW = select(Code.system, Code.code, Code.title, Code.description, Code.family, Code.addon, Code.billable,
                   Code.status, Code.effective, Code.end_date, Code.parent, Code.notes, Code.release_id).where(
    Code.system == bindparam("system"), Code.code == bindparam("code"))
_RELEASES = select(Release.id, Release.name, Release.kind)
_FAMILY_TITLE = select(Family.title).where(Family.key == bindparam("key"))
_DESCRIBED_SYSTEMS = select(Descriptor.system).distinct()
_TITLES = select(Code.code, Code.title).where(Code.system == bindparam("system"),
                                              Code.code.in_(bindparam("codes", expanding=True)))
_LINKED_FROM = select(Relation.related, Relation.related_system, Relation.kind).where(
    Relation.system == bindparam("system"), Relation.code == bindparam("code"))
_ADDONS_OF = select(Relation.code, Relation.system).where(
    Relation.related_system == bindparam("system"), Relation.related == bindparam("code"),
    Relation.kind == "add-on-of")
_FAMILY_MEMBERS = select(Code.code, Code.title).where(
    Code.system == bindparam("system"), Code.family == bindparam("family"), Code.code != bindparam("code"),
    Code.status == "active")
_DESCRIPTORS = (select(Descriptor.kind, Descriptor.release_id, Descriptor.text, Descriptor.end_date, Release.name)
                .join(Release, Release.id == Descriptor.release_id)
                .where(Descriptor.system == bindparam("system"), Descriptor.code == bindparam("code"))
                .order_by(Descriptor.release_id.desc()))


@dataclass
class Related:
    code: str
    system: str
    title: str
    kind: str  # sibling, add-on, primary, see-also, child


@dataclass
class CodeFacts:
    """Everything the draft and the reviewer need about one code."""

    code: str
    system: str
    known: bool
    title: str = ""
    description: str = ""
    family: str | None = None
    family_title: str | None = None
    addon: bool = False
    billable: bool = True
    status: str = "active"
    source: str | None = None  # the release the facts came from
    starter: bool = False  # our own starter words, not licensed descriptors
    effective: date | None = None
    end_date: date | None = None
    descriptor: str | None = None  # the licensed descriptor, when a CPT or HCPCS file is loaded
    descriptor_source: str | None = None
    notes: dict[str, list[str]] = field(default_factory=dict)  # ICD-10-CM, inherited from parents
    related: list[Related] = field(default_factory=list)


class Lookup:
    """Code facts from one database, cached until a new release is loaded.

    A code looked up for the first time costs a few queries; what many codes share (the rows of
    ICD-10-CM categories above them, families, releases) is read once and kept with the facts."""

    def __init__(self, session: Session):
        self.session = session
        self._marker = None
        self._cache: dict[tuple[str, str], CodeFacts] = {}
        self._rows: dict[tuple[str, str], object] = {}  # (system, code): its row, or None
        self._families: dict[str, str | None] = {}  # key: title
        self._releases: dict[int, tuple[str, str]] | None = None  # id: (name, kind)
        self._described: set[str] | None = None  # the systems with licensed descriptors loaded
        self._index: CodeIndex | None = None  # read when first needed (see index)

    def _current_marker(self):
        return tuple(self.session.execute(select(func.count(Release.id), func.max(Release.id))).one())

    @property
    def index(self) -> CodeIndex:
        """Every code in force, read when first needed, then kept up to date by refresh."""
        return self._index if self._index is not None else self.load_index()

    def load_index(self) -> CodeIndex:
        """The index, read now if it was not read yet (a worker hands out its first batch before it
        reads its own)."""
        if self._index is None:
            if self._marker is None:
                self._marker = self._current_marker()
            self._index = self._read_index()
        return self._index

    def refresh(self) -> None:
        """Start afresh if a release was loaded since the last look (cheap when nothing changed):
        the facts read so far are dropped, and the index is read again if it was read at all."""
        marker = self._current_marker()
        if marker != self._marker:
            if self._index is not None:
                self._index = self._read_index()
            self.forget()
            self._marker = marker

    def forget(self) -> None:
        """Drop every fact and row read so far (a new release; benchmarks of a cold start)."""
        self._cache.clear()
        self._rows.clear()
        self._families.clear()
        self._releases = self._described = None

    def _read_index(self) -> CodeIndex:
        """Every code, as one string per system from the database (100,000 rows as Python objects
        took most of the worker's start); a system whose codes do not split back into as many as
        it has (a code with a line break) is read row by row."""
        connection = self.session.connection()
        by_system: dict[str, list[str]] = {}
        for system, count, joined in connection.execute(_CODES_BY_SYSTEM):
            codes = joined.split("\n") if joined is not None else []
            if len(codes) != count:
                codes = list(connection.execute(select(Code.code).where(Code.system == system)).scalars())
            by_system[system] = codes
        return CodeIndex(by_system.get(CPT, ()), by_system.get(HCPCS, ()), by_system.get(ICD10CM, ()))

    def facts(self, system: str, code: str) -> CodeFacts:
        key = (system, code)
        if key not in self._cache:
            if len(self._cache) >= CACHE_LIMIT or len(self._rows) >= CACHE_LIMIT:
                self.forget()
            self._cache[key] = self._load(system, code)
        return self._cache[key]

    def _load(self, system: str, code: str) -> CodeFacts:
        row = self._row(system, code)
        if row is None:
            return CodeFacts(code=code, system=system, known=False)
        name, kind = self._release(row.release_id)
        facts = CodeFacts(code=code, system=system, known=True, title=row.title,
                          description=row.description or "", family=row.family, addon=row.addon,
                          billable=row.billable, status=row.status, source=name,
                          starter=kind == "starter", effective=row.effective, end_date=row.end_date)
        self._descriptor(facts)
        if row.family:
            facts.family_title = self._family_title(row.family)
        if system == ICD10CM:
            facts.related = self._icd_related(row)
            facts.notes = self._icd_notes(row)
        else:
            facts.related = rank_related(self._siblings(row), self._relations(row))
        return facts

    def _row(self, system: str, code: str):
        """A code's row (its columns by name), or None; kept, since the categories above
        ICD-10-CM codes are read again for every code below them."""
        key = (system, code)
        if key not in self._rows:
            self._rows[key] = self.session.connection().execute(_CODE_ROW, dict(system=system, code=code)).first()
        return self._rows[key]

    def _release(self, release_id: int | None) -> tuple[str | None, str | None]:
        """(name, kind) of a release; (None, None) for none or one not found."""
        if release_id is None:
            return None, None
        if self._releases is None:
            self._releases = {r.id: (r.name, r.kind) for r in self.session.connection().execute(_RELEASES)}
        return self._releases.get(release_id, (None, None))

    def _family_title(self, key: str) -> str | None:
        if key not in self._families:
            self._families[key] = self.session.connection().execute(_FAMILY_TITLE, dict(key=key)).scalar()
        return self._families[key]

    def _descriptor(self, facts: CodeFacts) -> None:
        """The licensed descriptor (long before medium before short, newest first) and its end date.
        Its effective date is the date of the last change, not when the code began, so it is not
        used for "not yet effective"."""
        connection = self.session.connection()
        if self._described is None:
            self._described = set(connection.execute(_DESCRIBED_SYSTEMS).scalars())
        if facts.system not in self._described:
            return
        rows = connection.execute(_DESCRIPTORS, dict(system=facts.system, code=facts.code)).all()
        rank = {"long": 0, "medium": 1, "short": 2}
        rows.sort(key=lambda r: (rank.get(r.kind, 3), -r.release_id))
        if rows:
            best = rows[0]
            facts.descriptor, facts.descriptor_source = best.text, best.name
            facts.end_date = best.end_date or facts.end_date

    def _icd_notes(self, row) -> dict[str, list[str]]:
        """Excludes, code-first and use-additional notes of the code and of every level above it,
        since a note on a category applies to all its codes."""
        notes: dict[str, list[str]] = {}
        current, seen = row, 0
        while current is not None and seen < 6:
            for kind, items in (current.notes or {}).items():
                notes.setdefault(kind, []).extend(i for i in items if i not in notes.get(kind, []))
            current = self._row(ICD10CM, current.parent) if current.parent else None
            seen += 1
        return notes

    def _titles(self, system: str, codes: list[str]) -> dict[str, str]:
        if not codes:
            return {}
        rows = self.session.connection().execute(_TITLES, dict(system=system, codes=codes)).all()
        return dict(rows)

    def _relations(self, row) -> list[Related]:
        out: list[Related] = []
        connection, values = self.session.connection(), dict(system=row.system, code=row.code)
        forward = connection.execute(_LINKED_FROM, values).all()
        backward = connection.execute(_ADDONS_OF, values).all()
        pairs = [(c, s, "primary" if k == "add-on-of" else k) for c, s, k in forward]
        pairs += [(c, s, "add-on") for c, s in backward]
        for system in {s for _, s, _ in pairs}:
            titles = self._titles(system, [c for c, s, _ in pairs if s == system])
            out += [Related(c, s, titles.get(c, ""), k) for c, s, k in pairs if s == system]
        return sorted(out, key=lambda r: (r.kind, r.code))

    def _siblings(self, row) -> list[Related]:
        """Family members nearest to the code, so 99213 shows 99212 and 99214 before 99202."""
        if not row.family:
            return []
        rows = self.session.connection().execute(
            _FAMILY_MEMBERS, dict(system=row.system, family=row.family, code=row.code)).all()
        rows.sort(key=lambda r: (_distance(r[0], row.code), r[0]))
        return [Related(c, row.system, t, "sibling") for c, t in rows[:RELATED_LIMIT]]

    def _icd_related(self, row) -> list[Related]:
        """A header code lists its billable codes; a billable code lists its neighbours."""
        if not row.billable:
            kind, query = "child", _ICD_CHILDREN
            low, high = _prefix_range(row.code if "." in row.code else row.code + ".")
            values = dict(low=low, high=high)
        else:
            parent = _icd_parent(row.code)
            if parent is None:
                return []
            kind, query = "sibling", _ICD_SIBLINGS
            low, high = _prefix_range(parent)
            values = dict(low=low, high=high, length=len(row.code), code=row.code)
        rows = self.session.connection().execute(query, values).all()
        related = [Related(c, ICD10CM, t, kind) for c, t in rows]
        parent = self._row(ICD10CM, row.parent) if row.parent else None
        if parent is not None:
            related.insert(0, Related(parent.code, ICD10CM, parent.title, "parent"))
        return related


NEAREST_SIBLINGS = 4


def rank_related(siblings: list[Related], linked: list[Related]) -> list[Related]:
    """The order a coder wants: the nearest family members (for 62303: 62302, 62304, 62305), then
    add-on codes and primaries, then see-also links, then the rest of the family."""
    order = {"add-on": 0, "primary": 1, "see-also": 2}
    ranked = siblings[:NEAREST_SIBLINGS] + sorted(linked, key=lambda r: (order.get(r.kind, 3), r.code))
    ranked += siblings[NEAREST_SIBLINGS:]
    seen: set[str] = set()
    out = [r for r in ranked if not (r.code in seen or seen.add(r.code))]
    return out[:RELATED_LIMIT + 2]


def _prefix_range(prefix: str) -> tuple[str, str]:
    """Codes beginning with a prefix as a range on the primary key, which LIKE would not use."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


# An ICD-10-CM header's billable codes; a billable code's neighbours (same length, same parent).
_IN_RANGE = (Code.system == ICD10CM, Code.code >= bindparam("low"), Code.code < bindparam("high"), Code.billable)
_ICD_CHILDREN = select(Code.code, Code.title).where(*_IN_RANGE).order_by(Code.code).limit(RELATED_LIMIT * 2)
_ICD_SIBLINGS = (select(Code.code, Code.title)
                 .where(*_IN_RANGE, func.length(Code.code) == bindparam("length"), Code.code != bindparam("code"))
                 .order_by(Code.code).limit(RELATED_LIMIT))


def _icd_parent(code: str) -> str | None:
    if "." not in code:
        return None
    head, tail = code.split(".", 1)
    return f"{head}.{tail[:-1]}" if len(tail) > 1 else f"{head}."


def _distance(a: str, b: str) -> int:
    """How far apart two codes of one family are: numerically, with letter prefixes kept apart."""
    apart = 0 if a[0].isdigit() == b[0].isdigit() and (a[0].isdigit() or a[0] == b[0]) else 10**6
    return apart + abs(int(re.sub(r"\D", "", a) or 0) - int(re.sub(r"\D", "", b) or 0))
