"""Queue commands: `queue`, `show`, `requeue`, `export`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.markup import escape
from sqlmodel import Session

from .. import operator, queries
from ..states import Status
from . import STATE, app, console

STATUS_HELP = "One of: " + ", ".join(s.value for s in Status)


def _status(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return Status(value.lower()).value
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a status. {STATUS_HELP}")


@app.command()
def queue(status: str = typer.Option(None, "--status", "-s", help=STATUS_HELP, callback=_status),
          limit: int = typer.Option(50, help="At most this many rows."),
          as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Questions oldest first (default: those waiting for review), with counts per status."""
    from rich.table import Table

    engine = STATE.require_schema()
    with Session(engine.execution_options(readonly=True)) as session:
        rows = queries.queue(session, status, limit)
        counts = queries.counts(session)
        oldest = queries.oldest_waiting(session)
    if as_json:
        print(json.dumps(dict(counts=counts, oldest_waiting=oldest.isoformat() if oldest else None,
                              items=[r.as_json() for r in rows])))
        return
    summary = "  ".join(f"{name} {n}" for name, n in counts.items() if n)
    console.print(f"{summary or 'no questions yet'}  |  oldest waiting: {queries.age(oldest)}")
    table = Table("id", "status", "age", "from", "subject", "codes", "claimed by" if not status else "reason")
    for r in rows:
        table.add_row(str(r.id), r.status, queries.age(r.received_at), r.from_addr or "-",
                      (r.subject or "")[:60], " ".join(r.codes[:6]),
                      (r.claimed_by or "") if not status else (r.reason or "")[:60])
    console.print(table)


@app.command()
def show(question_id: int, as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """One question: headers, the text that was read, codes found, the draft and its history."""
    from rich.panel import Panel
    from rich.table import Table

    engine = STATE.require_schema()
    with Session(engine.execution_options(readonly=True)) as session:
        d = queries.detail(session, question_id)
    if as_json:
        print(json.dumps(d))
        return
    head = (f"From: {d['from_name'] or ''} <{d['from_addr'] or '?'}>\nSubject: {d['subject'] or ''}\n"
            f"Date: {d['sent_date'] or '-'}\nMessage-ID: {d['message_id'] or '-'}\n"
            f"Status: {d['status']}" + (f" ({d['stage']}: {d['reason']})" if d["reason"] else ""))
    console.print(Panel(head, title=f"question {d['id']}", expand=False))
    if d["new_text"] is not None:
        console.print(Panel(d["new_text"] or "(empty)", title=f"what they wrote ({d['body_source']})"))
    if d["quoted_text"]:
        console.print(Panel(d["quoted_text"][:1500], title="quoted history", style="dim"))
    for a in d["attachments"]:
        console.print(f"attachment: {a['filename'] or '(no name)'} {a['content_type']} {a['size']} bytes")
    if d["codes"]:
        table = Table("code", "system", "asked/quoted", "modifiers", "units", "known")
        for c in d["codes"]:
            table.add_row(c["code"], c["system"], "quoted" if c["quoted"] else "asked",
                          " ".join(c["modifiers"]), str(c["units"]), "yes" if c["known"] else "no")
        console.print(table)
    if d["modifiers"]:
        console.print("modifiers mentioned: " + " ".join(d["modifiers"]))
    _print_analysis(d["analysis"])
    if d["reply"]:
        r = d["reply"]
        console.print(Panel(f"To: {r['to']}\nSubject: {r['subject']}\n\n{r['edited_text'] or r['text']}",
                            title=f"draft ({r['kind']})"))
    events = Table("at", "actor", "action", "from", "to", "reason")
    for e in d["events"]:
        events.add_row(e["at"][:19], e["actor"], e["action"], e["from_status"] or "", e["to_status"] or "",
                       (e["reason"] or "")[:80])
    console.print(events)


@app.command()
def requeue(question_id: int, actor: str = typer.Option("operator", "--as", help="Who is doing this.")):
    """Put a quarantined question back where it came from, so the stages run it again."""
    engine = STATE.require_schema()
    with Session(engine) as session:
        target = operator.requeue(session, question_id, actor)
        session.commit()
    console.print(f"question {question_id} requeued as {target}")


@app.command()
def export(question_id: int, out: Path = typer.Option(None, "--out", "-o", help="Write to this file."),
           as_json: bool = typer.Option(False, "--json", help="Everything known as JSON instead of the .eml.")):
    """Write the stored message as it arrived (.eml), or everything known about it as JSON."""
    engine = STATE.require_schema()
    with Session(engine.execution_options(readonly=True)) as session:
        data = (json.dumps(queries.detail(session, question_id), indent=2) + "\n").encode() if as_json \
            else queries.raw(session, question_id)
    if out:
        out.write_bytes(data)
        console.print(f"wrote {len(data)} bytes to {out}")
    else:
        sys.stdout.buffer.write(data)


def _print_analysis(analysis: dict) -> None:
    """What the reviewer needs beside the draft: checks and suggestions, each with its source."""
    if not analysis:
        return
    dos = analysis.get("date_of_service")
    console.print(f"date of service: {dos}" + ("" if analysis.get("dos_from_text") else " (not given; the day it arrived)"))
    for w in analysis.get("warnings", []):
        console.print(f"[yellow]{w['kind']}[/yellow] {escape(' '.join(w['codes']))}: {escape(w['message'])} "
                      f"[dim](source: {escape(w['source'] or 'unknown')})[/dim]", markup=True, soft_wrap=True)
    for s in analysis.get("suggestions", []):
        console.print(f"suggested (confirm): {escape(s['code'])} {s['system']} {escape(s['title'])} "
                      f"[dim](score {s['score']})[/dim]", markup=True,
                      soft_wrap=True)
    for note in analysis.get("missing", []):
        console.print(f"[dim]not checked: {escape(note)}[/dim]", markup=True, soft_wrap=True)
    for src in analysis.get("sources", []):
        if src["known"]:
            origin = src["source"] + (" — our own starter words, not licensed text" if src["starter"] else "")
            if src.get("descriptor_source"):
                origin += f"; descriptor from {src['descriptor_source']}"
            console.print(f"[dim]{escape(src['code'])}: {escape(origin)}[/dim]", markup=True, soft_wrap=True)
