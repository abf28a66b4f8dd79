"""`consultant codes import KIND FILE` and `consultant codes releases`."""
from __future__ import annotations

import json
from collections.abc import Callable
from enum import Enum
from pathlib import Path

import typer
from sqlmodel import Session

from . import STATE, codes_app, console

import_app = typer.Typer(help="Load a licensed code file as a release (a re-import of the same release replaces it).",
                         no_args_is_help=True)
codes_app.add_typer(import_app, name="import")


class DescriptorKind(str, Enum):
    long = "long"
    medium = "medium"
    short = "short"


class PtpSetting(str, Enum):
    practitioner = "practitioner"
    hospital = "hospital"


class MueSetting(str, Enum):
    practitioner = "practitioner"
    hospital = "hospital"
    dme = "dme"


def _effective():
    return typer.Option(None, "--effective", help="Year or quarter the file takes effect, e.g. 2025 or 2025Q2; "
                                                  "default: taken from the file name when it has one.")


def _name():
    return typer.Option(None, "--name", help="Release name; default: from the kind, setting and effective "
                                             "(or the file name).")


def _run(first: Path, load: Callable) -> None:
    """Run one import in one transaction with a progress bar, then print a line with the row count."""
    from ..db import session_scope
    from .admin import progress_bar

    engine = STATE.require_schema()
    with progress_bar() as bar:
        task = bar.add_task(f"reading {first.name}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, description=f"loading {first.name}", completed=done, total=total)

        with session_scope(engine) as session:
            done = load(session, progress)
        bar.update(task, description=f"loaded {first.name}")
    extra = f", {done.new_codes} new codes" if done.new_codes else ""
    extra += f", {done.skipped} modifier records skipped" if done.skipped else ""
    console.print(f"{done.rows} {done.what} loaded as release {done.release.id} "
                  f"\"{done.release.name}\"{extra}", soft_wrap=True, markup=False)


@import_app.command("cpt")
def cpt(file: Path = typer.Argument(..., help="AMA descriptor file: code<TAB>descriptor per line."),
        kind: DescriptorKind = typer.Option(DescriptorKind.long, "--kind", help="Which descriptors the file holds."),
        effective: str = _effective(), name: str = _name()):
    """Load AMA CPT descriptors (long, medium or short); unknown codes become known codes."""
    from ..importers import import_cpt

    _run(file, lambda s, p: import_cpt(s, file, kind.value, effective, name, p))


@import_app.command("hcpcs")
def hcpcs(file: Path = typer.Argument(..., help="CMS HCPCS file: fixed-width records or the CSV export."),
          effective: str = _effective(), name: str = _name()):
    """Load the CMS HCPCS Level II file (long and short descriptions, dates, action codes)."""
    from ..importers import import_hcpcs

    _run(file, lambda s, p: import_hcpcs(s, file, effective, name, p))


@import_app.command("ncci-ptp")
def ncci_ptp(files: list[Path] = typer.Argument(..., help="PTP file(s) of one quarter and setting: CMS "
                                                          "splits a quarter into several, load them together."),
             setting: PtpSetting = typer.Option(None, "--setting", help="Default: from the file name "
                                                "(hospital, ccioph), else practitioner."),
             effective: str = _effective(), name: str = _name()):
    """Load NCCI procedure-to-procedure edits for one setting."""
    from ..importers import import_ptp

    _run(files[0], lambda s, p: import_ptp(s, files, setting.value if setting else None, effective, name, p))


@import_app.command("mue")
def mue(file: Path = typer.Argument(..., help="CMS MUE CSV."),
        setting: MueSetting = typer.Option(None, "--setting", help="Default: from the file name "
                                           "(hospital, dme), else practitioner."),
        effective: str = _effective(), name: str = _name()):
    """Load medically unlikely edits (units per line or per day) for one setting."""
    from ..importers import import_mue

    _run(file, lambda s, p: import_mue(s, file, setting.value if setting else None, effective, name, p))


@import_app.command("pfs-rvu")
def pfs_rvu(file: Path = typer.Argument(..., help="CMS physician fee schedule RVU CSV (PPRRVU)."),
            effective: str = _effective(), name: str = _name()):
    """Load fee schedule indicators: status, global days, modifiers 50/51/62/66/80."""
    from ..importers import import_pfs_rvu

    _run(file, lambda s, p: import_pfs_rvu(s, file, effective, name, p))


@codes_app.command("releases")
def releases(as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """List every loaded release; for PTP, MUE and the fee schedule, which one is in force."""
    from ..importers import list_releases

    engine = STATE.require_schema()
    with Session(engine) as session:
        rows = list_releases(session)
    if as_json:
        console.print_json(json.dumps(rows))
        return
    from rich.table import Table

    table = Table("id", "kind", "name", "file", "effective", "rows", "loaded at", "in force")
    for r in rows:
        force = "" if r["in_force"] is None else ("yes" if r["in_force"] else "no")
        table.add_row(str(r["id"]), r["kind"], r["name"], r["file_name"] or "", r["effective"] or "",
                      str(r["rows"]), r["loaded_at"][:16].replace("T", " "), force)
    console.print(table)
    console.print(f"{len(rows)} releases")
