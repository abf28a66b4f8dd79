"""Import CMS NCCI procedure-to-procedure (PTP) edit files: tab-delimited, practitioner or hospital."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlmodel import Session

from ..codetables import PtpEdit
from .common import (CODE, CODE_SHAPED, check_effective, check_setting, guess_effective, guess_setting,
                     parse_ymd, read_text, release_name, row_error, text_lines)
from .store import Imported, Progress, bulk_insert, new_release

SETTINGS = ("practitioner", "hospital")
COLUMNS = ("Column 1", "Column 2", "Prior to 1996", "Effective Date", "Deletion Date", "Modifier",
           "PTP Edit Rationale")
INDICATORS = ("0", "1", "9")  # 0 = not allowed, 1 = allowed, 9 = not applicable

# column 1, column 2, effective, deletion, modifier indicator, prior to 1996, rationale
PtpRow = tuple[str, str, str, str | None, str, bool, str | None]


def parse_ptp(path: Path) -> list[PtpRow]:
    """Every edit pair of one file. Copyright lines and the header wrapped over several lines come
    before the first data row and are skipped; after it, every non-blank line must be an edit.
    Raises ImportFileError at the first bad line."""
    path = Path(path)
    rows: list[PtpRow] = []
    dates: dict[str, str | None] = {"*": None, "": None}
    texts: dict[str, str] = {}  # a few hundred rationales repeat across a million rows: share them
    for number, line in enumerate(text_lines(read_text(path)), 1):
        if not line.strip():
            continue
        fields = [f.strip().strip('"').strip() for f in line.split("\t")]
        if not CODE_SHAPED.fullmatch(fields[0].upper()):
            if rows:
                raise row_error(path, number, COLUMNS[0],
                                f'"{fields[0][:40]}" is not a code, so this is not an edit row')
            continue
        if len(fields) < 6:
            raise row_error(path, number, None, f"has {len(fields)} tab-separated fields; an edit row has 7 "
                            f"({', '.join(COLUMNS)})")
        col1, col2, prior, effective, deletion, modifier = (f.upper() for f in fields[:6])
        rationale = fields[6] if len(fields) > 6 else ""
        for column, code in ((0, col1), (1, col2)):
            if not CODE.fullmatch(code):
                raise row_error(path, number, COLUMNS[column], f'"{code}" is not a CPT or HCPCS code')
        if prior not in ("*", ""):
            raise row_error(path, number, COLUMNS[2],
                            f'"{prior}" is neither "*" (in existence prior to 1996) nor blank')
        for column, value in ((3, effective), (4, deletion)):
            if value not in dates:
                try:
                    dates[value] = parse_ymd(value)
                except ValueError as exc:
                    raise row_error(path, number, COLUMNS[column], str(exc)) from None
        if dates[effective] is None:
            raise row_error(path, number, COLUMNS[3], "the effective date is missing")
        if modifier not in INDICATORS:
            raise row_error(path, number, COLUMNS[5], f'"{modifier}" is not a modifier indicator (0, 1 or 9)')
        rows.append((col1, col2, dates[effective], dates[deletion], modifier, prior == "*",
                     texts.setdefault(rationale, rationale) or None))
    if not rows:
        raise row_error(path, 1, None,
                        "no edit row (column 1 code, column 2 code, dates, modifier indicator) was found")
    return rows


def import_ptp(session: Session, paths: Path | Sequence[Path], setting: str | None = None,
               effective: str | None = None, name: str | None = None,
               progress: Progress | None = None) -> Imported:
    """Load one or more PTP files (CMS splits a quarter into several) as one `ncci-ptp` release for
    a setting; the caller commits. Every file is read and checked before anything is written.

    The setting defaults to the one the file name suggests (ccioph/hospital), else practitioner.
    Practitioner and hospital edits are separate releases, so importing one never touches the other.
    """
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    setting = check_setting(setting or guess_setting(paths[0].name, SETTINGS), SETTINGS)
    effective = check_effective(effective) or guess_effective(paths[0].name)
    rows = [row for path in paths for row in parse_ptp(path)]
    release = new_release(session, "ncci-ptp", name or release_name(f"NCCI PTP {setting}", effective, paths[0]),
                          ", ".join(p.name for p in paths), effective)
    bulk_insert(session, PtpEdit, ("column1", "column2", "effective", "deletion", "modifier_indicator",
                                   "prior_1996", "rationale", "setting", "release_id"),
                rows, progress, extra=(setting, release.id))
    release.rows = len(rows)
    return Imported(release, len(rows), f"{setting} PTP edit pairs")
