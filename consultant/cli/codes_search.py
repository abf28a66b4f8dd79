"""`consultant codes search WORDS`: find codes by words or by the start of a number, ranked."""
from __future__ import annotations

import json
from dataclasses import asdict

import typer
from sqlmodel import Session

from . import STATE, codes_app, console


@codes_app.command("search")
def search(words: str = typer.Argument(..., help='Words ("thoracic myelogram") or the start of a code ("6230").'),
           limit: int = typer.Option(20, "--limit", "-n", min=1, max=200, help="How many codes to list."),
           as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Find codes by words in their titles and descriptions (full-text, best match first)."""
    from ..textsearch import search as find

    engine = STATE.require_schema()
    with Session(engine) as session:
        hits = find(session, words, limit=limit)
    if as_json:
        console.print_json(json.dumps([asdict(h) for h in hits]))
        return
    if not hits:
        console.print(f"no code matches {words!r}")
        return
    from rich.table import Table

    table = Table("code", "system", "title", "score")
    for hit in hits:
        table.add_row(hit.code, hit.system, hit.title, f"{hit.score:g}")
    console.print(table)
