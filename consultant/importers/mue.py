"""Import a CMS medically unlikely edit (MUE) CSV for practitioner, outpatient hospital or DME services."""
from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from ..codetables import Mue
from .common import (CODE, cell, check_effective, check_setting, guess_effective, guess_setting, read_table,
                     read_text, release_name, row_error)
from .store import Imported, Progress, bulk_insert, new_release

SETTINGS = ("practitioner", "hospital", "dme")
# Column names used in messages, and fragments of the CMS labels that identify them
# ("Practitioner Services MUE Values", "Outpatient Hospital Services MUE Values", ...).
COLUMNS = {"HCPCS/CPT Code": ("HCPCS", "CPTCODE"), "MUE Value": ("MUEVALUE",),
           "MUE Adjudication Indicator": ("ADJUDICATION",), "MUE Rationale": ("RATIONALE",)}
ADJUDICATION = {"1": "1 Line Edit", "2": "2 Date of Service Edit: Policy", "3": "3 Date of Service Edit: Clinical"}

MueRow = tuple[str, int, str, str | None]  # code, units, adjudication, rationale


def parse_mue(path: Path) -> list[MueRow]:
    """Every code's limit. Copyright lines and a header (one row or wrapped over several) come
    first. Raises ImportFileError at the first bad row."""
    path = Path(path)
    index, data = read_table(path, read_text(path), COLUMNS)
    code_at, units_at, adj_at, why_at = index.values()
    rows: list[MueRow] = []
    for number, cells in data:
        code = cell(cells, code_at).upper()
        if not CODE.fullmatch(code):
            raise row_error(path, number, "HCPCS/CPT Code", f'"{code}" is not a CPT or HCPCS code')
        units = cell(cells, units_at)
        if not units.isdigit():
            raise row_error(path, number, "MUE Value", f'"{units}" is not a whole number')
        adjudication = " ".join(cell(cells, adj_at).split())
        if adjudication[:1] not in ADJUDICATION or adjudication[1:2] not in ("", " "):
            raise row_error(path, number, "MUE Adjudication Indicator",
                            f'"{adjudication}" does not start with an indicator 1, 2 or 3')
        rows.append((code, int(units), (adjudication if len(adjudication) > 1 else ADJUDICATION[adjudication])[:60],
                     cell(cells, why_at) or None))
    return rows


def import_mue(session: Session, path: Path, setting: str | None = None, effective: str | None = None,
               name: str | None = None, progress: Progress | None = None) -> Imported:
    """Load one MUE file as an `mue` release for a setting; the caller commits. The setting
    defaults to what the file name says (PractitionerServices, OutpatientHospital, DME)."""
    path = Path(path)
    setting = check_setting(setting or guess_setting(path.name, SETTINGS), SETTINGS)
    effective = check_effective(effective) or guess_effective(path.name)
    rows = parse_mue(path)
    release = new_release(session, "mue", name or release_name(f"MUE {setting}", effective, path),
                          path.name, effective)
    bulk_insert(session, Mue, ("code", "units", "adjudication", "rationale", "setting", "release_id"),
                rows, progress, extra=(setting, release.id))
    release.rows = len(rows)
    return Imported(release, len(rows), f"{setting} MUE limits")
