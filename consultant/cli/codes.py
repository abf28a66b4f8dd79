"""`consultant codes ...`: look codes up, reload the bundled data."""
from __future__ import annotations

import json
from dataclasses import asdict

import typer
from rich.table import Table
from sqlmodel import Session

from ..codeindex import ICD10CM
from ..errors import NotFound
from ..lookup import Lookup
from . import STATE, codes_app, console


def resolve(lookup: Lookup, text: str):
    """A code as typed ('m5416', 'J1100', '99213') -> the facts of the system that knows it."""
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
    """Show a code with its family, description, related codes and source."""
    engine = STATE.require_schema()
    with Session(engine) as session:
        facts = resolve(Lookup(session), code)
    if as_json:
        console.print_json(json.dumps(asdict(facts)))
        return
    console.print(f"[bold]{facts.code}[/bold] ({facts.system}) {facts.title}", soft_wrap=True)
    if facts.family_title:
        console.print(f"family: {facts.family_title}")
    if facts.description:
        console.print(facts.description, soft_wrap=True)
    if facts.system == ICD10CM:
        console.print("billable" if facts.billable else "header code: not billable on its own")
    if facts.addon:
        console.print("add-on code")
    console.print(f"source: {facts.source}")
    if facts.related:
        table = Table("related", "kind", "title")
        for r in facts.related:
            table.add_row(r.code, r.kind, r.title)
        console.print(table)


@codes_app.command("load")
def load(icd: bool = typer.Option(True, "--icd/--no-icd", help="Load ICD-10-CM too.")):
    """Reload the bundled starter set (and ICD-10-CM); earlier loads of them are replaced."""
    from .admin import load_bundled

    load_bundled(STATE.require_schema(), icd=icd)
