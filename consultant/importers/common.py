"""What every importer reads with: decoding, lines and CSV records, headers, dates, row errors."""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

from ..errors import ConsultantError, NotFound

# CPT Category I/II/III and PLA codes (99213, 3074F, 0232T, 0001U) and HCPCS Level II (J1100).
CODE = re.compile(r"(?:\d{4}[0-9A-Z]|[A-Z]\d{4})")
# What a data row starts with: five capitals or digits, one at least a digit; strict checks follow.
# Header and copyright lines ("Column 1", "HCPCS", "CPT only copyright ...") never look like this.
CODE_SHAPED = re.compile(r"(?=.*\d)[0-9A-Z]{5}")
SETTINGS = ("practitioner", "hospital", "dme")


class ImportFileError(ConsultantError):
    """A file that cannot be imported; the message names the file, line and column."""


def row_error(path: Path, line: int, column: str | int | None, problem: str) -> ImportFileError:
    """`mue.csv line 7, column "MUE Value": "ten" is not a whole number`."""
    where = f"{path.name} line {line}"
    if isinstance(column, int):
        where += f", column {column}"
    elif column:
        where += f', column "{column}"'
    return ImportFileError(f"{where}: {problem}")


def read_text(path: Path) -> str:
    """The whole file as text. CMS files are often cp1252 or latin-1, Excel exports may carry a BOM
    or be UTF-16; UTF-8 is tried first because a cp1252 reading of UTF-8 never fails, only garbles."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"no such file: {path}")
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror}")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")  # every byte is a character: the last resort cannot fail


def text_lines(text: str) -> list[str]:
    """Lines without their endings. Not str.splitlines(), which also breaks at U+0085 and friends
    that a latin-1 reading of a CMS file can contain inside a description."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def csv_rows(path: Path, text: str, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """(line number where the record starts, cells stripped) for each CSV record."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    try:
        for cells in reader:
            yield start, [cell.strip() for cell in cells]
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ImportFileError(f"{path.name} line {reader.line_num}: not readable as CSV ({exc})") from None


def read_table(path: Path, text: str, wanted: dict[str, Sequence[str]],
               header_rows: int = 3) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    """Find the columns of a CMS CSV and return ({column: index}, [(line, cells) of data]).

    Data starts at the first record whose first cell is shaped like a code. The header is the
    run of up to `header_rows` records just above it that have two or more cells: CMS wraps
    labels over rows ("STATUS" above "CODE"), so each column's label is its cells joined top to
    bottom. Copyright and title lines above are one cell wide and are left out. `wanted` maps a
    column's name to fragments, any of which in the joined label (letters and digits only,
    upper case) identifies it; the first column that matches wins.
    """
    preamble: list[tuple[int, list[str]]] = []
    data: list[tuple[int, list[str]]] = []
    for number, cells in csv_rows(path, text):
        if not any(cells):
            continue
        if data or CODE_SHAPED.fullmatch(cells[0].upper()):
            data.append((number, cells))
        else:
            preamble.append((number, cells))
    header: list[tuple[int, list[str]]] = []
    for number, cells in reversed(preamble):
        if len(header) == header_rows or sum(1 for c in cells if c) < 2:
            break
        header.insert(0, (number, cells))
    width = max((len(cells) for _, cells in header), default=0)
    keys = [re.sub(r"[^A-Z0-9]", "", " ".join(cells[i] for _, cells in header if i < len(cells)).upper())
            for i in range(width)]
    index = {}
    for name, fragments in wanted.items():
        found = next((i for i, key in enumerate(keys) if any(f in key for f in fragments)), None)
        if found is None:
            where = f"line {header[0][0]}" if header else "before the first data row"
            raise ImportFileError(f'{path.name}: the header ({where}) has no "{name}" column')
        index[name] = found
    if not data:
        raise ImportFileError(f"{path.name}: no data row (one starting with a code) was found")
    return index, data


def cell(cells: list[str], index: int) -> str:
    return cells[index] if index < len(cells) else ""


def parse_ymd(value: str) -> str:
    """'20240101' -> '2024-01-01' (ISO text, which SQLite stores and PostgreSQL's COPY reads);
    raises ValueError with the reason."""
    if not re.fullmatch(r"\d{8}", value):
        raise ValueError(f'"{value}" is not a date (YYYYMMDD)')
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:])).isoformat()
    except ValueError:
        raise ValueError(f'"{value}" is not a date (YYYYMMDD)') from None


def parse_any_date(value: str) -> str:
    """Dates as CMS spreadsheets export them: 20250101, 2025-01-01 or 1/1/2025."""
    if m := re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", value):
        year, month, day = m.groups()
    elif m := re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", value):
        month, day, year = m.groups()
    else:
        return parse_ymd(value)
    try:
        return date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        raise ValueError(f'"{value}" is not a date') from None


MONTHS = {m: i for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                      "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1)}


def guess_effective(file_name: str) -> str | None:
    """The year or quarter a CMS file name carries: HCPC2025_JAN_ANWEB -> 2025Q1,
    MCR_MUE_..._Eff_04-01-2025 -> 2025Q2, PPRRVU25_APR -> 2025Q2, ptp-2025q3 -> 2025Q3, cpt2025 -> 2025."""
    name = Path(file_name).name.upper()
    if m := re.search(r"(?<!\d)(20\d\d)[ _-]?Q([1-4])(?!\d)", name):
        return f"{m[1]}Q{m[2]}"
    if m := re.search(r"(?<![A-Z0-9])Q([1-4])[ _-]?(20\d\d)(?!\d)", name):
        return f"{m[2]}Q{m[1]}"
    if m := re.search(r"(?<!\d)(\d\d)[-_.](\d\d)[-_.](20\d\d)(?!\d)", name):
        month = int(m[1])
        if 1 <= month <= 12:
            return f"{m[3]}Q{(month - 1) // 3 + 1}"
    year = re.search(r"(?<!\d)(20\d\d)(?!\d)", name)
    year = year[1] if year else None
    if year is None and (m := re.search(r"RVU(\d\d)(?!\d)", name)):
        year = f"20{m[1]}"  # the fee schedule writes two digits: PPRRVU25_JAN
    month = re.search(r"(?<![A-Z])(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(?:UARY|RUARY|CH|IL|E|Y|UST"
                      r"|T|TEMBER|OBER|EMBER)?(?![A-Z])", name)
    if year and month:
        return f"{year}Q{(MONTHS[month[1]] - 1) // 3 + 1}"
    return year


def check_effective(effective: str | None) -> str | None:
    if effective is None:
        return None
    value = effective.strip().upper()
    if not re.fullmatch(r"20\d\d(Q[1-4])?", value):
        raise ConsultantError(f"--effective {effective!r} is not a year or quarter such as 2025 or 2025Q2")
    return value


def check_setting(setting: str, allowed: Sequence[str] = SETTINGS) -> str:
    if setting not in allowed:
        raise ConsultantError(f"setting {setting!r} is not one of {', '.join(allowed)}")
    return setting


def guess_setting(file_name: str, allowed: Sequence[str] = SETTINGS) -> str:
    """CMS names its files by setting (PractitionerServices, OutpatientHospital, DME, ccipra, ccioph)."""
    name = Path(file_name).name.lower()
    if "dme" in allowed and "dme" in name:
        return "dme"
    if "hospital" in name or "ccioph" in name or "outpatient" in name:
        return "hospital"
    return "practitioner"


def release_name(label: str, effective: str | None, path: Path) -> str:
    """'NCCI PTP practitioner 2025Q2', or the file's name when no year or quarter is known."""
    return f"{label} {effective or Path(path).stem}"
