"""Load the bundled code data: the starter CPT/HCPCS set (our own words) and ICD-10-CM."""
from __future__ import annotations

import csv
import importlib.metadata
import warnings
from datetime import date
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from .codeindex import CPT, HCPCS, ICD10CM
from .codetables import Code, Family, Relation, Release
from .textsearch import reindex

DATA = Path(__file__).resolve().parent / "data" / "starter"
CHUNK = 5000
Progress = Callable[[int, int], None]  # (done, total)


def _rows(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(line for line in handle if not line.startswith("#"))


def _all_rows(data_dir: Path, suffix: str) -> Iterator[dict]:
    """The starter set is kept as one pair of files per area: <area>.families.csv, <area>.codes.csv."""
    for path in sorted(data_dir.glob(f"*.{suffix}.csv")):
        yield from _rows(path)


def system_of(code: str) -> str:
    """CPT codes start with a digit (99213, 3074F, 0232T); HCPCS Level II codes with a letter."""
    return CPT if code[:1].isdigit() else HCPCS


def _new_release(session: Session, kind: str, name: str, effective: str | None) -> Release:
    """Replace the rows of an earlier release of the same kind and name with a fresh release."""
    old = session.execute(select(Release.id).where(Release.kind == kind, Release.name == name)).scalars().all()
    if old:
        for table in (Relation, Code, Family):
            session.execute(delete(table).where(table.release_id.in_(old)))
        session.execute(delete(Release).where(Release.id.in_(old)))
    release = Release(kind=kind, name=name, effective=effective)
    session.add(release)
    session.flush()
    return release


def _insert(session: Session, table, rows: list[dict]) -> None:
    """Insert rows, keeping what another release already holds for the same key."""
    if not rows:
        return
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(module.insert(table).on_conflict_do_nothing(), rows)


def load_starter(session: Session, data_dir: Path = DATA, progress: Progress | None = None) -> Release:
    """The starter families, codes and relations; the caller commits."""
    release = _new_release(session, "starter", "CaseConsultant starter set (own words)", None)
    families = [dict(key=r["key"], system=r["system"], title=r["title"], summary=r.get("summary") or None,
                     range_start=(r.get("range") or "").split("-")[0] or None,
                     range_end=(r.get("range") or "").split("-")[-1] or None, release_id=release.id)
                for r in _all_rows(data_dir, "families")]
    _insert(session, Family, families)
    codes, relations = [], []
    for r in _all_rows(data_dir, "codes"):
        addon_to = (r.get("addon_to") or "").split()
        end = r.get("end_date") or None
        codes.append(dict(system=r["system"], code=r["code"].upper(), title=r["title"],
                          description=r["description"], family=r["family"] or None,
                          addon=bool(addon_to), status=r.get("status") or "active",
                          end_date=date.fromisoformat(end) if end else None, release_id=release.id))
        relations += [dict(system=r["system"], code=r["code"].upper(), kind="add-on-of",
                           related_system=system_of(p), related=p.upper(), release_id=release.id)
                      for p in addon_to]
        relations += [dict(system=r["system"], code=r["code"].upper(), kind="see-also",
                           related_system=system_of(p), related=p.upper(), release_id=release.id)
                      for p in (r.get("see_also") or "").split()]
    _insert(session, Code, codes)
    if relations:
        session.execute(insert(Relation), relations)
    release.rows = len(codes)
    reindex(session, (CPT, HCPCS))
    if progress:
        progress(len(codes), len(codes))
    return release


NOTE_KINDS = {"excludes1": "get_excludes1", "excludes2": "get_excludes2", "code_first": "get_code_first",
              "use_additional": "get_use_additional_code", "code_also": "get_code_also",
              "includes": "get_includes", "inclusion_terms": "get_inclusion_term"}


def icd10cm_rows() -> Iterable[tuple[str, str, bool, str | None, dict | None]]:
    """(dotted code, description, billable, parent code, notes) for every ICD-10-CM category and
    subcategory; notes are the excludes/code-first/use-additional lists the package carries.

    Imports simple_icd_10_cm (about 2 s and 200 MB), so only `consultant init` and
    `codes load` call this, never the worker.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the package uses a deprecated resource API
        import simple_icd_10_cm as icd
    for code in icd.get_all_codes(True):
        if icd.is_category_or_subcategory(code):
            parent = icd.get_parent(code)
            notes = {kind: items for kind, name in NOTE_KINDS.items() if (items := getattr(icd, name)(code))}
            yield (code, icd.get_description(code), icd.is_leaf(code),
                   parent if parent and "-" not in parent else None, notes or None)


def load_icd10cm(session: Session, progress: Progress | None = None,
                 rows: Iterable[tuple] | None = None) -> Release:
    version = importlib.metadata.version("simple-icd-10-cm")
    release = _new_release(session, "icd10cm", f"ICD-10-CM (simple-icd-10-cm {version})", None)
    items = list(rows if rows is not None else icd10cm_rows())
    for start in range(0, len(items), CHUNK):
        chunk = items[start:start + CHUNK]
        _insert(session, Code, [dict(system=ICD10CM, code=c, title=t, billable=b, parent=p, notes=n,
                                     release_id=release.id) for c, t, b, p, n in chunk])
        if progress:
            progress(min(start + CHUNK, len(items)), len(items))
    release.rows = len(items)
    reindex(session, (ICD10CM,))
    return release


def load_bundled(session: Session) -> tuple[Release, Release]:
    """The starter set and ICD-10-CM, as `consultant init` loads them; the caller commits."""
    return load_starter(session), load_icd10cm(session)
