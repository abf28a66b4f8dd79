"""The `stats` command: the operator overview in the terminal, or as JSON."""
from __future__ import annotations

import json

import typer
from sqlmodel import Session

from ..models import utcnow
from . import STATE, app, console


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, hours = seconds / 60, seconds / 3600
    return f"{seconds:.0f}s" if seconds < 120 else f"{minutes:.0f}m" if minutes < 120 else f"{hours:.1f}h"


def _when(run: dict | None) -> str:
    if not run:
        return "never"
    text = f"{run['finished_at']:%Y-%m-%d %H:%M:%S} UTC, " + ("ok" if run["ok"] else f"failed: {run['error']}")
    if run["runs"] > 1:
        text += f" (idle, {run['runs']} runs since {run['started_at']:%H:%M})"
    elif run["counts"]:
        text += " (" + ", ".join(f"{k} {v}" for k, v in run["counts"].items() if v) + ")"
    return text


def _answered(seen: dict) -> str:
    if seen["answered"] is None:
        return "not needed yet"
    return ("answered" if seen["answered"] else f"did not answer ({seen['error']})") + f" at {seen['at']:%H:%M:%S} UTC"


@app.command()
def stats(as_json: bool = typer.Option(False, "--json", help="Print JSON."),
          days: int = typer.Option(30, "--days", min=1, max=365, help="Window for review times and reviewers.")):
    """Counts per status, the oldest waiting question, activity, review times, reviewers and the service."""
    from rich.table import Table

    from .. import stats as stats_module

    engine = STATE.require_schema()
    with Session(engine.execution_options(readonly=True)) as session:
        data = stats_module.overview(session, utcnow(), days=days, charts=False)
    if as_json:
        print(json.dumps(data, default=str))
        return
    counts = "  ".join(f"{status} {n}" for status, n in data["counts"].items() if n)
    console.print(f"questions: {data['total']}" + (f"  ({counts})" if counts else ""))
    oldest = data["waiting"]["oldest"]
    console.print(f"waiting for review: {data['waiting']['count']}"
                  + (f", oldest question {oldest['id']} ({_age(oldest['age_seconds'])})" if oldest else ""))
    for key, span in (("hourly", "last 24 hours"), ("daily", "last 30 days")):
        totals = data[key]["totals"]
        console.print(f"{span}: drafted {totals['drafted']}, approved {totals['approved']}, sent {totals['sent']}")
    for name, figures in data["review_times"].items():
        console.print(f"review time, {name.replace('_', ' ')} ({figures['n']} decisions): "
                      + ", ".join(f"p{p} {_age(figures[f'p{p}'])}" for p in stats_module.PERCENTILES))
    if data["reviewers"]:
        table = Table("reviewer", "handled", "as drafted", "edited", "rejected", "top rejection reasons")
        for r in data["reviewers"]:
            table.add_row(r["reviewer"], str(r["handled"]), f"{r['share_unchanged']:.0%}", f"{r['share_edited']:.0%}",
                          f"{r['share_rejected']:.0%}", "; ".join(f"{x['reason']} ({x['count']})" for x in r["reasons"]))
        console.print(table)
    for key in ("quarantined", "failed"):
        items = data[key]["items"]
        for item in items[:10]:
            console.print(f"{key} {item['id']}: {item['stage'] or '-'}: {item['reason'] or item['last_error'] or ''}")
        if data[key]["next_after"] is not None or len(items) > 10:
            console.print(f"... more {key} questions: `consultant queue --status {key}`")
    service = data["service"]
    for job in ("poll", "send", "sweep"):
        console.print(f"last {job}: {_when(service[job]['last'])}")
    console.print(f"IMAP: {_answered(service['imap'])}; SMTP: {_answered(service['smtp'])}")
