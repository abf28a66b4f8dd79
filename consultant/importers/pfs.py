"""Import the CMS physician fee schedule RVU CSV (PPRRVU): status, global days and surgery indicators."""
from __future__ import annotations

import re
from pathlib import Path

from sqlmodel import Session

from ..codetables import FeeRule
from .common import (CODE, cell, check_effective, guess_effective, read_table, read_text, release_name,
                     row_error)
from .store import Imported, Progress, bulk_insert, new_release

# Column names used in messages, and fragments of the labels CMS wraps over two or three rows.
COLUMNS = {"HCPCS": ("HCPCS",), "MOD": ("MOD",), "STATUS CODE": ("STATUS",), "GLOB DAYS": ("GLOB",),
           "MULT PROC": ("MULT",), "BILAT SURG": ("BILAT",), "ASST SURG": ("ASST",),
           "CO-SURG": ("COSURG",), "TEAM SURG": ("TEAM",)}
INDICATORS = ("MULT PROC", "BILAT SURG", "ASST SURG", "CO-SURG", "TEAM SURG")

RvuRow = tuple[str, str | None, str, str | None, str, str, str, str, str]


def parse_rvu(path: Path) -> list[RvuRow]:
    """(code, modifier, status, global days, mult, bilat, asst, co, team) for every row.
    Raises ImportFileError at the first bad row."""
    path = Path(path)
    index, data = read_table(path, read_text(path), COLUMNS)
    rows: list[RvuRow] = []
    for number, cells in data:
        value = {name: cell(cells, i).upper() for name, i in index.items()}
        if not CODE.fullmatch(value["HCPCS"]):
            raise row_error(path, number, "HCPCS", f'"{value["HCPCS"]}" is not a CPT or HCPCS code')
        if value["MOD"] and not re.fullmatch(r"[0-9A-Z]{2}", value["MOD"]):
            raise row_error(path, number, "MOD", f'"{value["MOD"]}" is not a two-character modifier')
        if not re.fullmatch(r"[0-9A-Z]", value["STATUS CODE"]):
            raise row_error(path, number, "STATUS CODE", f'"{value["STATUS CODE"]}" is not a one-character status code')
        # 000, 010 and 090 are days; MMM, XXX, YYY and ZZZ are CMS's other global-period codes.
        if value["GLOB DAYS"] and not re.fullmatch(r"\d{3}|[A-Z]{3}", value["GLOB DAYS"]):
            raise row_error(path, number, "GLOB DAYS",
                            f'"{value["GLOB DAYS"]}" is not a global period (000, 010, 090, XXX ...)')
        for name in INDICATORS:
            if not re.fullmatch(r"\d", value[name]):
                raise row_error(path, number, name, f'"{value[name]}" is not a one-digit indicator')
        rows.append((value["HCPCS"], value["MOD"] or None, value["STATUS CODE"], value["GLOB DAYS"] or None,
                     *(value[name] for name in INDICATORS)))
    return rows


def import_pfs_rvu(session: Session, path: Path, effective: str | None = None, name: str | None = None,
                   progress: Progress | None = None) -> Imported:
    """Load one RVU file as a `pfs-rvu` release; the caller commits."""
    path = Path(path)
    effective = check_effective(effective) or guess_effective(path.name)
    rows = parse_rvu(path)
    release = new_release(session, "pfs-rvu", name or release_name("PFS RVU", effective, path),
                          path.name, effective)
    bulk_insert(session, FeeRule, ("code", "modifier", "status_code", "global_days", "mult_proc", "bilat_surg",
                                   "asst_surg", "co_surg", "team_surg", "release_id"),
                rows, progress, extra=(release.id,))
    release.rows = len(rows)
    return Imported(release, len(rows), "fee schedule rows")
