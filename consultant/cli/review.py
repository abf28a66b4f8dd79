"""Review and sending commands: claim, release, approve, reject, retry, send, sweep."""
from __future__ import annotations

from pathlib import Path

import typer
from sqlmodel import Session

from .. import operator, review
from ..errors import ConsultantError
from . import STATE, app, console

AS = typer.Option(..., "--as", help="Your name, recorded in the history.")


def _minutes() -> int:
    return STATE.settings.review.claim_minutes


@app.command()
def claim(question_id: int, actor: str = AS):
    """Claim a drafted question for review (a lease of review.claim_minutes)."""
    with Session(STATE.require_schema()) as session:
        q = review.claim(session, question_id, actor, _minutes())
        until = q.claimed_until  # read before the session closes and the row detaches
        session.commit()
    console.print(f"question {question_id} claimed by {actor} until {until:%H:%M} UTC")


@app.command()
def release(question_id: int, actor: str = typer.Option("operator", "--as", help="Who is releasing."),
            force: bool = typer.Option(False, "--force",
                                       help="Release someone else's live claim (recorded as forced).")):
    """Give a claimed question back to the queue; someone else's live claim only with --force."""
    with Session(STATE.require_schema()) as session:
        forced = review.release(session, question_id, actor, force=force)
        session.commit()
    console.print(f"question {question_id} released"
                  + (f" (forced: it was claimed by {forced})" if forced else ""))


@app.command()
def approve(question_id: int, actor: str = AS,
            body_file: Path = typer.Option(None, "--body-file", help="Send this text instead of the draft.")):
    """Approve the draft (or an edited text) for sending."""
    text = None
    if body_file is not None:
        try:
            text = body_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConsultantError(f"{body_file}: cannot read: {exc}")
    with Session(STATE.require_schema()) as session:
        review.approve(session, question_id, actor, _minutes(), text)
        session.commit()
    console.print(f"question {question_id} approved by {actor}" + (" with edits" if text else "")
                  + "; the worker sends it within seconds")


@app.command()
def reject(question_id: int, actor: str = AS,
           reason: str = typer.Option(..., "--reason", help="Why (kept in the history)."),
           notify: bool = typer.Option(False, "--notify", help="Tell the asker we will not answer.")):
    """Reject a question with a reason; optionally send the asker a short notice."""
    settings = STATE.settings
    with Session(STATE.require_schema()) as session:
        review.reject(session, question_id, actor, reason, _minutes(), notify=notify,
                      templates=settings.templates_dir(), service_name=settings.service.name,
                      domain=settings.mail_domain())
        session.commit()
    console.print(f"question {question_id} rejected by {actor}" + ("; a notice will be sent" if notify else ""))


@app.command()
def retry(question_id: int, actor: str = typer.Option("operator", "--as", help="Who is retrying.")):
    """Send a failed reply again (failed -> approved)."""
    with Session(STATE.require_schema()) as session:
        what = operator.retry(session, question_id, actor)
        session.commit()
    console.print(f"question {question_id}: {what} queued to send again")


@app.command()
def send(once: bool = typer.Option(False, "--once", help="Send what is due now and exit.")):
    """Send approved replies over SMTP: everything due now. Exits 4 when a server is unreachable."""
    from ..models import utcnow
    from ..send import Sender
    from ..servicelog import ServiceLog, counts_of

    if not once:
        raise ConsultantError("use `consultant send --once`, or `consultant run` to keep sending")
    engine = STATE.require_schema()
    sender = Sender(engine, STATE.settings)
    started = utcnow()
    total = sender.run_until_done()
    down = [watch.what for watch in (sender.smtp_outage, sender.imap_outage) if watch.down]
    problem = sender.imap_outage.problem or sender.smtp_outage.problem
    ServiceLog(engine).record("send", started, ok=problem is None, server_ok=sender.smtp_outage.answered,
                              counts=counts_of(total), error=problem)
    console.print(f"sent {total.sent}, retrying {total.retrying}, failed {total.failed}"
                  + "".join(f"; {what} unreachable" for what in down), soft_wrap=True)
    if down:  # as `poll --once`: an outage is exit 4, and it changed nothing
        raise typer.Exit(4)


@app.command()
def sweep(once: bool = typer.Option(False, "--once", help="Sweep now and exit.")):
    """Release stale claims and reconcile replies left mid-send by a stopped worker."""
    from ..sweep import Sweeper

    if not once:
        raise ConsultantError("use `consultant sweep --once`, or `consultant run` to keep sweeping")
    sweeper = Sweeper(STATE.require_schema(), STATE.settings)
    counts = sweeper.run_once()
    console.print(f"released {counts.released} claims; reconciled: {counts.confirmed_sent} sent, "
                  f"{counts.resend} to send again, {counts.unknown} unknown (now failed)"
                  + (f"; purged the mail of {counts.purged} questions" if counts.purged else "")
                  + ("; IMAP server (Sent folder) unreachable" if sweeper.imap_outage.down else ""),
                  soft_wrap=True)
    if sweeper.imap_outage.down:  # replies left mid-send could not be reconciled
        raise typer.Exit(4)
