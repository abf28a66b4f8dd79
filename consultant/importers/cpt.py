"""Import an AMA-style CPT descriptor file: one `code<TAB>descriptor` line per code."""
from __future__ import annotations

import re
from pathlib import Path

from sqlmodel import Session

from ..codeindex import CPT
from ..codetables import Descriptor
from ..textsearch import reindex
from ..errors import ConsultantError
from .common import check_effective, guess_effective, read_text, release_name, row_error, text_lines
from .store import Imported, Progress, add_missing_codes, bulk_insert, new_release

KINDS = ("long", "medium", "short")
# Category I (99213), II (3074F), III (0232T), PLA (0001U) and MAAA (0001M) codes all start with four digits.
CPT_CODE = re.compile(r"\d{4}[0-9A-Z]")


def parse_cpt(path: Path) -> list[tuple[str, str]]:
    """(code, descriptor) for every line; header lines before the first code are skipped.

    The AMA ships tab-separated files; a line without a tab is split at the first run of spaces.
    Raises ImportFileError at the first line that is not a code and a descriptor.
    """
    path = Path(path)
    rows: list[tuple[str, str]] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text_lines(read_text(path)), 1):
        if not line.strip():
            continue
        code, tab, descriptor = line.partition("\t")
        if not tab:
            code, _, descriptor = line.strip().partition(" ")
        code = code.strip().strip('"').upper()
        if not rows and not code[:1].isdigit():
            continue  # a title or header line ("Code<TAB>Long descriptor") before the data
        if not CPT_CODE.fullmatch(code):
            raise row_error(path, number, "code", f'"{code}" is not a CPT code (four digits and a digit or letter)')
        descriptor = descriptor.strip()
        if len(descriptor) > 1 and descriptor[0] == descriptor[-1] == '"':
            descriptor = descriptor[1:-1].replace('""', '"').strip()
        if not descriptor:
            raise row_error(path, number, "descriptor", f"{code} has no descriptor")
        if code in first_line:
            raise row_error(path, number, "code", f"{code} is listed twice (first on line {first_line[code]})")
        first_line[code] = number
        rows.append((code, descriptor))
    if not rows:
        raise row_error(path, 1, None, "no line holds a CPT code and a descriptor")
    return rows


def import_cpt(session: Session, path: Path, kind: str = "long", effective: str | None = None,
               name: str | None = None, progress: Progress | None = None) -> Imported:
    """Load one descriptor file as a `cpt` release; the caller commits.

    Descriptors go to Descriptor (system CPT, this kind). A code no release has loaded yet also
    gets a Code row titled with its descriptor, so the finder knows it; starter rows stay as they are.
    """
    if kind not in KINDS:
        raise ConsultantError(f"--kind {kind!r} is not one of {', '.join(KINDS)}")
    path = Path(path)
    effective = check_effective(effective) or guess_effective(path.name)
    rows = parse_cpt(path)
    release = new_release(session, "cpt", name or release_name(f"CPT {kind} descriptors", effective, path),
                          path.name, effective)
    bulk_insert(session, Descriptor, ("system", "code", "kind", "text", "release_id"),
                [(CPT, code, kind, text) for code, text in rows], progress, extra=(release.id,))
    new = add_missing_codes(session, CPT, [(code, text, "active", None, None) for code, text in rows], release.id)
    release.rows = len(rows)
    reindex(session, (CPT,))
    return Imported(release, len(rows), f"{kind} descriptors", new_codes=new)
