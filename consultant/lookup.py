"""Look codes up in the database: titles, descriptions, families and related codes, with sources."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlmodel import Session

from .codeindex import CPT, HCPCS, ICD10CM, CodeIndex
from .codetables import Code, Descriptor, Family, Relation, Release

RELATED_LIMIT = 8
_CODES_BY_SYSTEM = select(Code.system, func.count(), func.aggregate_strings(Code.code, "\n")).group_by(Code.system)


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
    """Code facts from one database, cached until a new release is loaded."""

    def __init__(self, session: Session):
        self.session = session
        self._marker = None
        self._cache: dict[tuple[str, str], CodeFacts] = {}
        self.index = CodeIndex()
        self.refresh()

    def _current_marker(self):
        return self.session.execute(select(func.count(Release.id), func.max(Release.id))).one()

    def refresh(self) -> None:
        """Reload the index if a release was loaded since the last look (cheap when nothing changed)."""
        marker = tuple(self._current_marker())
        if marker != self._marker:
            self.index = self._read_index()
            self._cache.clear()
            self._marker = marker

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
            self._cache[key] = self._load(system, code)
        return self._cache[key]

    def _load(self, system: str, code: str) -> CodeFacts:
        row = self.session.get(Code, (system, code))
        if row is None:
            return CodeFacts(code=code, system=system, known=False)
        release = self.session.get(Release, row.release_id) if row.release_id else None
        facts = CodeFacts(code=code, system=system, known=True, title=row.title,
                          description=row.description or "", family=row.family, addon=row.addon,
                          billable=row.billable, status=row.status, source=release.name if release else None,
                          starter=bool(release and release.kind == "starter"),
                          effective=row.effective, end_date=row.end_date)
        self._descriptor(facts)
        if row.family:
            family = self.session.get(Family, row.family)
            facts.family_title = family.title if family else None
        if system == ICD10CM:
            facts.related = self._icd_related(row)
            facts.notes = self._icd_notes(row)
        else:
            facts.related = rank_related(self._siblings(row), self._relations(row))
        return facts

    def _descriptor(self, facts: CodeFacts) -> None:
        """The licensed descriptor (long before medium before short, newest first) and its end date.
        Its effective date is the date of the last change, not when the code began, so it is not
        used for "not yet effective"."""
        rows = self.session.execute(
            select(Descriptor, Release.name).join(Release, Release.id == Descriptor.release_id)
            .where(Descriptor.system == facts.system, Descriptor.code == facts.code)
            .order_by(Descriptor.release_id.desc())).all()
        rank = {"long": 0, "medium": 1, "short": 2}
        rows.sort(key=lambda r: (rank.get(r[0].kind, 3), -r[0].release_id))
        if rows:
            best, name = rows[0]
            facts.descriptor, facts.descriptor_source = best.text, name
            facts.end_date = best.end_date or facts.end_date

    def _icd_notes(self, row: Code) -> dict[str, list[str]]:
        """Excludes, code-first and use-additional notes of the code and of every level above it,
        since a note on a category applies to all its codes."""
        notes: dict[str, list[str]] = {}
        current, seen = row, 0
        while current is not None and seen < 6:
            for kind, items in (current.notes or {}).items():
                notes.setdefault(kind, []).extend(i for i in items if i not in notes.get(kind, []))
            current = self.session.get(Code, (ICD10CM, current.parent)) if current.parent else None
            seen += 1
        return notes

    def _titles(self, system: str, codes: list[str]) -> dict[str, str]:
        if not codes:
            return {}
        rows = self.session.execute(
            select(Code.code, Code.title).where(Code.system == system, Code.code.in_(codes))).all()
        return dict(rows)

    def _relations(self, row: Code) -> list[Related]:
        out: list[Related] = []
        forward = self.session.execute(select(Relation.related, Relation.related_system, Relation.kind)
                                       .where(Relation.system == row.system, Relation.code == row.code)).all()
        backward = self.session.execute(select(Relation.code, Relation.system)
                                        .where(Relation.related_system == row.system,
                                               Relation.related == row.code, Relation.kind == "add-on-of")).all()
        pairs = [(c, s, "primary" if k == "add-on-of" else k) for c, s, k in forward]
        pairs += [(c, s, "add-on") for c, s in backward]
        for system in {s for _, s, _ in pairs}:
            titles = self._titles(system, [c for c, s, _ in pairs if s == system])
            out += [Related(c, s, titles.get(c, ""), k) for c, s, k in pairs if s == system]
        return sorted(out, key=lambda r: (r.kind, r.code))

    def _siblings(self, row: Code) -> list[Related]:
        """Family members nearest to the code, so 99213 shows 99212 and 99214 before 99202."""
        if not row.family:
            return []
        rows = self.session.execute(select(Code.code, Code.title).where(
            Code.system == row.system, Code.family == row.family, Code.code != row.code,
            Code.status == "active")).all()
        rows.sort(key=lambda r: (_distance(r[0], row.code), r[0]))
        return [Related(c, row.system, t, "sibling") for c, t in rows[:RELATED_LIMIT]]

    def _icd_related(self, row: Code) -> list[Related]:
        """A header code lists its billable codes; a billable code lists its neighbours."""
        if not row.billable:
            prefix = row.code if "." in row.code else row.code + "."
            kind = "child"
            query = select(Code.code, Code.title).where(
                Code.system == ICD10CM, *_starts_with(prefix), Code.billable)
        else:
            parent = _icd_parent(row.code)
            if parent is None:
                return []
            kind = "sibling"
            query = select(Code.code, Code.title).where(
                Code.system == ICD10CM, *_starts_with(parent),
                func.length(Code.code) == len(row.code), Code.code != row.code, Code.billable)
        limit = RELATED_LIMIT * 2 if kind == "child" else RELATED_LIMIT
        rows = self.session.execute(query.order_by(Code.code).limit(limit)).all()
        related = [Related(c, ICD10CM, t, kind) for c, t in rows]
        parent = self.session.get(Code, (ICD10CM, row.parent)) if row.parent else None
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


def _starts_with(prefix: str) -> tuple:
    """Codes beginning with a prefix as a range on the primary key, which LIKE would not use."""
    return Code.code >= prefix, Code.code < prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _icd_parent(code: str) -> str | None:
    if "." not in code:
        return None
    head, tail = code.split(".", 1)
    return f"{head}.{tail[:-1]}" if len(tail) > 1 else f"{head}."


def _distance(a: str, b: str) -> int:
    """How far apart two codes of one family are: numerically, with letter prefixes kept apart."""
    apart = 0 if a[0].isdigit() == b[0].isdigit() and (a[0].isdigit() or a[0] == b[0]) else 10**6
    return apart + abs(int(re.sub(r"\D", "", a) or 0) - int(re.sub(r"\D", "", b) or 0))
