"""Mail commands: `run`, `poll`, `inject`, `inspect`."""
from __future__ import annotations

import gc
import json
from pathlib import Path

import typer
from sqlmodel import Session

from .. import operator
from ..errors import ConsultantError
from ..lookup import Lookup
from . import STATE, app, console


def summary(result) -> str:
    f, p = result.fetched, result.processed
    text = (f"fetched {f.stored} new ({f.duplicates} already stored, {f.oversize} oversize); "
            f"drafted {p.drafted}, ignored {p.ignored}, quarantined {p.quarantined}")
    if not result.imap_ok:
        text += "; IMAP server unreachable"
    if not result.db_ok:
        text += "; database unreachable"
    return text


def _worker(settings, fetch_mail: bool = True):
    """The worker of `poll` and `run`. Its extra drafting processes are forked first, now that the
    code is imported and before the database is opened: ready as soon as a backlog needs them
    (they end at once if none comes). Then what the worker keeps for its whole run (the code, the
    mapped models, and the code index once read: see Processor._complete) is left out of the garbage
    collector's passes: their full passes over it were 4 % of a backlog's time."""
    from .. import spares
    from ..finish import warm_up
    from ..pool import process_count
    from ..worker import Worker

    spares.fork(process_count(settings.worker.processes), warm=lambda: warm_up(settings))
    worker = Worker(STATE.require_schema(), settings, fetch_mail=fetch_mail)
    gc.freeze()
    return worker


@app.command()
def poll(once: bool = typer.Option(False, "--once", help="Run one poll and exit (the only mode today)."),
         fetch: bool = typer.Option(True, "--fetch/--no-fetch", help="Fetch from IMAP before processing.")):
    """Fetch new mail and process it through screen, parse and draft, synchronously."""
    if not once:
        raise ConsultantError("use `consultant poll --once`, or `consultant run` to keep polling")
    worker = _worker(STATE.settings, fetch_mail=fetch)
    try:
        result = worker.poll_once()
    finally:
        worker.close()
    console.print(summary(result))
    if not (result.imap_ok and result.db_ok):
        raise typer.Exit(4)


@app.command()
def run():
    """Run the worker until SIGTERM or Ctrl-C: poll (woken by IMAP IDLE), process, draft."""
    settings = STATE.settings
    worker = _worker(settings)
    worker.run(ready=lambda: console.print(
        f"worker running: {settings.imap.host}:{settings.imap.port} {settings.imap.mailbox}, "
        f"polling every {settings.worker.poll_every:g}s{' with IDLE' if settings.imap.idle else ''}; Ctrl-C to stop"))
    console.print("worker stopped")


@app.command()
def inject(files: list[Path] = typer.Argument(..., help="Message files (.eml)."),
           process: bool = typer.Option(True, "--process/--store-only", help="Run the stages right away.")):
    """Store message files as if they had arrived by IMAP, then run them through the pipeline."""
    from ..process import Processor

    engine = STATE.require_schema()
    ids = []
    for path in files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConsultantError(f"{path}: cannot read: {exc.strerror}")
        with Session(engine) as session:
            qid = operator.inject(session, raw, "inject", path.name)
            session.commit()
        console.print(f"{path}: " + (f"stored as question {qid}" if qid else "already stored (same Message-ID)"))
        ids.append(qid)
    if process:
        with Processor(engine, STATE.settings) as processor:
            processor.run_until_done()
        with Session(engine) as session:
            from ..models import Question
            for qid in filter(None, ids):
                q = session.get(Question, qid)
                console.print(f"question {qid}: {q.status}" + (f" ({q.reason})" if q.reason else ""))


@app.command()
def inspect(files: list[Path] = typer.Argument(..., help="Message files (.eml)."),
            as_json: bool = typer.Option(False, "--json", help="One JSON object per line.")):
    """Screen, parse and look up message files with no side effects; one result per file."""
    engine = STATE.require_schema()
    with Session(engine.execution_options(readonly=True)) as session:
        lookup = Lookup(session)
        for path in files:
            result = operator.inspect_file(path, STATE.settings, lookup)
            if as_json:
                print(json.dumps(result), flush=False)
                continue
            line = f"{result['file']}: {result['action']}"
            if result["reason"]:
                line += f" ({result['reason']})"
            console.print(line, markup=False)
            for c in result["codes"]:
                extra = "".join(f"-{m}" for m in c["modifiers"]) + (f" x{c['units']}" if c["units"] > 1 else "")
                state = "quoted" if c["quoted"] else "asked"
                console.print(f"  {c['code']}{extra} {c['system']} {state} "
                              f"{c['title'] if c['known'] else '(unknown code)'}", markup=False)


@app.command()
def demo(once: bool = typer.Option(False, "--once", help="Run the loop once, print a summary and exit.")):
    """Run the whole pipeline on embedded servers with the synthetic questions in mailbox_fixtures/."""
    from .. import demo as demo_module

    var = Path(STATE.settings.paths.var) / "demo"
    raise typer.Exit(demo_module.run(console, var, once))
