"""`consultant codes ...`: look codes up, reload the bundled data."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from sqlmodel import Session

from ..errors import NotFound
from . import STATE, codes_app, console

if TYPE_CHECKING:
    from ..lookup import Lookup


def resolve(lookup: Lookup, text: str):
    """A code as typed ('m5416', 'J1100', '99213') -> the facts of the system that knows it."""
    from ..codeindex import ICD10CM

    token = text.strip().upper()
    for system in ("CPT", "HCPCS"):
        if lookup.index.has(system, token):
            return lookup.facts(system, token)
    dotted = lookup.index.icd(token)
    if dotted:
        return lookup.facts(ICD10CM, dotted)
    raise NotFound(f"{text!r} is not a code we know (CPT, HCPCS Level II or ICD-10-CM)")


@codes_app.command("show")
def show(code: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Show everything known about a code, with the release each fact came from."""
    from ..knowledge import everything
    from ..lookup import Lookup

    engine = STATE.require_schema()
    with Session(engine) as session:
        lookup = Lookup(session)
        data = everything(lookup, resolve(lookup, code))
    if as_json:
        console.print_json(json.dumps(data, default=str))
        return
    _print_code(data)


def _print_code(d: dict) -> None:
    from rich.table import Table

    from ..codeindex import ICD10CM

    console.print(f"{d['code']} ({d['system']}) {d['title']}", style="bold", soft_wrap=True)
    status = d["status"] + (f", ended {d['end_date']}" if d["end_date"] else "")
    console.print(f"status: {status}" + (f"; effective {d['effective']}" if d["effective"] else ""))
    if d["family_title"]:
        console.print(f"family: {d['family_title']}")
    if d["description"]:
        console.print(d["description"], soft_wrap=True)
    if d["system"] == ICD10CM:
        console.print("billable" if d["billable"] else "header code: not billable on its own")
    if d["addon"]:
        console.print("add-on code: report it only with its primary procedure")
    console.print(f"source: {d['source']}" + (f" ({d['starter_note']})" if d["starter_note"] else ""),
                  soft_wrap=True)
    for kind, items in d["notes"].items():
        console.print(f"{kind.replace('_', ' ')}: " + "; ".join(items), soft_wrap=True)
    for desc in d["descriptors"]:
        dates = " ".join(x for x in (desc["effective"] and f"from {desc['effective']}",
                                     desc["end_date"] and f"until {desc['end_date']}") if x)
        console.print(f"{desc['kind']} descriptor ({desc['source']}{', ' + dates if dates else ''}): {desc['text']}",
                      soft_wrap=True)
    if d["related"]:
        table = Table("related", "kind", "title", title="related codes")
        for r in d["related"]:
            table.add_row(r["code"], r["kind"], r["title"])
        console.print(table)
    _print_edits(d)


def _print_edits(d: dict) -> None:
    from rich.table import Table

    ptp = d["ptp"]
    if not ptp["loaded"]:
        console.print("NCCI PTP edits: not loaded")
    else:
        console.print(f"NCCI PTP edits in force: {ptp['as_column1']} with {d['code']} as column 1, "
                      f"{ptp['as_column2']} as column 2")
        if ptp["pairs"]:
            table = Table("column 1", "column 2", "setting", "indicator", "effective", "deleted", "source")
            for p in ptp["pairs"]:
                table.add_row(p["column1"], p["column2"], p["setting"], f"{p['indicator']}: {p['meaning']}",
                              p["effective"] or "", p["deletion"] or "", p["source"])
            console.print(table)
    for m in d["mue"]:
        console.print(f"MUE ({m['setting']}): {m['units']} units, {m['adjudication'] or 'adjudication not given'}"
                      f" [{m['source']}]", soft_wrap=True)
    for f in d["fee_schedule"]:
        console.print(f"fee schedule{' with modifier ' + f['modifier'] if f['modifier'] else ''}: status "
                      f"{f['status_code']}, global {f['global_days']}, mult proc {f['mult_proc']}, bilateral "
                      f"{f['bilat_surg']}, assistant {f['asst_surg']}, co-surgeons {f['co_surg']}, team "
                      f"{f['team_surg']} [{f['source']}]", soft_wrap=True)


@codes_app.command("load")
def load(icd: bool = typer.Option(True, "--icd/--no-icd", help="Load ICD-10-CM too.")):
    """Reload the bundled starter set (and ICD-10-CM); earlier loads of them are replaced."""
    from .admin import load_bundled

    load_bundled(STATE.require_schema(), icd=icd)
