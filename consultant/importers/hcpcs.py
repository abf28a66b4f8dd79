"""Import the CMS HCPCS Level II file, as the fixed-width 320-character records or as the CSV export."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlmodel import Session

from ..codeindex import HCPCS
from ..codetables import Descriptor
from ..textsearch import reindex
from .common import (check_effective, csv_rows, guess_effective, parse_any_date, parse_ymd, read_text,
                     release_name, row_error, text_lines)
from .store import Imported, Progress, add_missing_codes, bulk_insert, new_release

LEVEL2 = re.compile(r"[A-Z]\d{4}")
MODIFIER = re.compile(r"[A-Z0-9]{2}")
# Record id (column 11): 3 = first line of a procedure, 4 = continuation of its long description,
# 7 = first line of a modifier, 8 = continuation of a modifier's description.
PROCEDURE, CONTINUED, MODIFIER_FIRST, MODIFIER_CONTINUED = "3", "4", "7", "8"
# The contractor record layout (HCPC<YYYY>_recordlayout.txt): 1-based first and last column.
FIXED = {"code": (1, 5), "seq": (6, 10), "rec": (11, 11), "long": (12, 91), "short": (92, 119),
         "added": (269, 276), "effective": (277, 284), "ended": (285, 292), "action": (293, 293)}
FIXED_LABEL = {"code": "HCPC", "seq": "sequence number", "rec": "record id", "long": "long description",
               "short": "short description", "added": "add date", "effective": "action effective date",
               "ended": "termination date", "action": "action code"}
# What messages call a field of the fixed-width file: 'long description (columns 12-91)'.
FIXED_COLUMNS = {name: f"{FIXED_LABEL[name]} (columns {a}-{b})" if a != b else f"{FIXED_LABEL[name]} (column {a})"
                 for name, (a, b) in FIXED.items()}
# CSV export: header labels, compared without spaces, underscores and case.
CSV_COLUMNS = {"code": "HCPC", "seq": "SEQNUM", "rec": "RECID", "long": "LONG DESCRIPTION",
               "short": "SHORT DESCRIPTION", "added": "ADD_DT", "effective": "ACT_EFF_DT",
               "ended": "TERM_DT", "action": "ACTION_CD"}


@dataclass
class HcpcsCode:
    code: str
    long: str
    short: str
    added: str | None  # ISO dates
    effective: str | None
    ended: str | None
    action: str | None
    seq: int
    line: int


def _key(label: str) -> str:
    return re.sub(r"[\s_]", "", label).upper()


def _fixed_records(path: Path, lines: list[str]):
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if len(line) < 11:
            raise row_error(path, number, None, f"is {len(line)} characters long; a HCPCS record has at "
                            "least 11 (code, sequence number, record id)")
        padded = line.ljust(320)
        fields = {name: padded[a - 1:b].strip() for name, (a, b) in FIXED.items()}
        yield number, fields, FIXED_COLUMNS


def _csv_records(path: Path, text: str):
    rows = csv_rows(path, text)
    for number, cells in rows:
        keys = [_key(c) for c in cells]
        if "HCPC" in keys or "HCPCS" in keys:
            break  # title lines before the header are skipped
    else:
        return
    index = {}
    for name, label in CSV_COLUMNS.items():
        wanted = {_key(label)} | ({"HCPCS"} if name == "code" else set())
        found = [i for i, k in enumerate(keys) if k in wanted]
        if not found:
            raise row_error(path, number, None, f"the header has no {label} column")
        index[name] = found[0]
    for number, cells in rows:
        if not any(cells):
            continue
        cells += [""] * (len(keys) - len(cells))
        yield number, {name: cells[i] for name, i in index.items()}, CSV_COLUMNS


def _is_csv(lines: list[str]) -> bool:
    """The CSV export has a header naming HCPC and RECID; the fixed-width file has no header."""
    head = [line for line in lines[:20] if line.strip()][:5]
    return any("HCPC" in line.upper() and "RECID" in _key(line) and ("," in line) for line in head)


def parse_hcpcs(path: Path) -> tuple[list[HcpcsCode], int]:
    """The procedure codes of the file, continuation lines joined to their long description,
    and the number of modifier records skipped. Raises ImportFileError at the first bad line."""
    path = Path(path)
    text = read_text(path)
    lines = text_lines(text)
    csv_form = _is_csv(lines)
    records = _csv_records(path, text) if csv_form else _fixed_records(path, lines)
    parse_date = parse_any_date if csv_form else parse_ymd
    codes: dict[str, HcpcsCode] = {}
    current: HcpcsCode | None = None
    modifiers = 0
    for number, f, labels in records:
        rec, code = f["rec"], f["code"].upper()
        if rec in (MODIFIER_FIRST, MODIFIER_CONTINUED):
            # HCPCS modifiers (2 characters) are not codes; modifiers.py explains them in our words.
            if not MODIFIER.fullmatch(code):
                raise row_error(path, number, labels["code"], f'"{code}" is not a two-character modifier')
            modifiers += rec == MODIFIER_FIRST
            current = None
            continue
        if rec not in (PROCEDURE, CONTINUED):
            raise row_error(path, number, labels["rec"], f'"{rec}" is not a record id (3, 4, 7 or 8)')
        if not LEVEL2.fullmatch(code):
            raise row_error(path, number, labels["code"],
                            f'"{code}" is not a HCPCS Level II code (a letter and four digits)')
        if not f["seq"].isdigit():
            raise row_error(path, number, labels["seq"], f'"{f["seq"]}" is not a sequence number')
        seq = int(f["seq"])
        if rec == CONTINUED:
            if current is None or current.code != code:
                raise row_error(path, number, labels["rec"], f"continues the description of {code}, "
                                "but the line before is not that code's first line (record id 3) or a continuation")
            if seq <= current.seq:
                raise row_error(path, number, labels["seq"],
                                f"sequence number {f['seq']} does not follow {current.seq:05d}")
            current.long = f"{current.long} {f['long']}".strip()
            current.seq = seq
            continue
        if code in codes:
            raise row_error(path, number, labels["code"], f"{code} is listed twice (first on line {codes[code].line})")
        dates = {}
        for name in ("added", "effective", "ended"):
            try:
                dates[name] = parse_date(f[name]) if f[name] else None
            except ValueError as exc:
                raise row_error(path, number, labels[name], str(exc)) from None
        action = f["action"].upper() or None
        if action is not None and not re.fullmatch(r"[A-Z]", action):
            raise row_error(path, number, labels["action"], f'"{f["action"]}" is not an action code (one letter)')
        if not f["long"] and not f["short"]:
            raise row_error(path, number, labels["long"], f"{code} has no description")
        current = codes[code] = HcpcsCode(code, f["long"], f["short"], dates["added"], dates["effective"],
                                          dates["ended"], action, seq, number)
    if not codes:
        raise row_error(path, 1, None, "no HCPCS procedure record (record id 3) was found")
    return list(codes.values()), modifiers


def import_hcpcs(session: Session, path: Path, effective: str | None = None, name: str | None = None,
                 progress: Progress | None = None, today: date | None = None) -> Imported:
    """Load the HCPCS file as an `hcpcs` release; the caller commits.

    Each code gets a long and a short Descriptor (effective = action effective date or add date,
    end_date = termination date, action = action code). A code no release has loaded yet also
    gets a Code row; it is "deleted" when its termination date has passed.
    """
    path = Path(path)
    today = today or date.today()
    effective = check_effective(effective) or guess_effective(path.name)
    codes, modifiers = parse_hcpcs(path)
    release = new_release(session, "hcpcs", name or release_name("HCPCS Level II", effective, path),
                          path.name, effective)
    descriptors = []
    for c in codes:
        start = c.effective or c.added
        descriptors += [(HCPCS, c.code, kind, text, start, c.ended, c.action)
                        for kind, text in (("long", c.long), ("short", c.short)) if text]
    bulk_insert(session, Descriptor, ("system", "code", "kind", "text", "effective", "end_date", "action",
                                      "release_id"), descriptors, progress, extra=(release.id,))
    ended = {c.code: c.ended and date.fromisoformat(c.ended) < today for c in codes}
    new = add_missing_codes(session, HCPCS, [(c.code, c.long or c.short, "deleted" if ended[c.code] else "active",
                                              c.added, c.ended) for c in codes], release.id)
    release.rows = len(codes)
    reindex(session, (HCPCS,))
    return Imported(release, len(codes), "HCPCS codes", new_codes=new, skipped=modifiers)
