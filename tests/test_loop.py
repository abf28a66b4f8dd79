"""The whole loop on real servers: APPEND a question, poll, claim, approve with an edit, send."""
import subprocess
import sys
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlalchemy import select
from sqlmodel import Session

from consultant import review
from consultant.models import Event
from consultant.send import Sender
from consultant.worker import Worker
from support import make_settings, question_bytes, smtp_section

EDITED = "Hello,\n\nYes: 62303 and 72128 can be billed together here; 59 is not needed.\n\nThe CaseConsultant team\n"


def test_a_question_goes_from_the_inbox_to_an_edited_answer_with_every_step_recorded(
        engine, db_url, dovecot, imap_user, smtp):
    settings = make_settings(db_url, imap_user, smtp=smtp_section(smtp, sent_folder="Sent"))
    with IMAPClient(imap_user.host, imap_user.port, ssl=False) as client:
        client.login(imap_user.username, imap_user.password)
        client.append("INBOX", question_bytes(7))
    worker = Worker(engine, settings)
    try:
        assert worker.poll_once().processed.drafted == 1
    finally:
        worker.close()
    with Session(engine) as session:
        review.claim(session, 1, "bob", 30)
        session.commit()
        review.approve(session, 1, "bob", 30, text=EDITED)
        session.commit()
    sender = Sender(engine, settings, owner="sender-1")
    assert sender.run_once().sent == 1
    [received] = smtp.wait_for(1)
    assert received.message.get_body(("plain",)).get_content().replace("\r\n", "\n") == EDITED
    assert "59 is not needed" in received.message.get_body(("html",)).get_content()
    assert received.message["In-Reply-To"] == "<q7@ridgeview-clinic.test>"
    with Session(engine) as session:
        trail = [(e.actor, e.action, e.to_status) for e in
                 session.execute(select(Event).where(Event.question_id == 1).order_by(Event.id)).scalars()]
    assert trail == [
        ("fetch", "transition", "received"),
        ("worker", "transition", "parsed"),
        ("worker", "transition", "drafted"),
        ("bob", "claim", "in_review"),
        ("bob", "edit", None),
        ("bob", "approve", "approved"),
        ("sender-1", "send", "sending"),
        ("sender-1", "send", "sent"),
    ]


def test_demo_once_sends_one_answer_per_drafted_question(tmp_path):
    """What `make demo` runs, without a person: every draft approved, sent and written to disk."""
    env = {"CONSULTANT_PATHS__VAR": str(tmp_path), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "consultant", "demo", "--once"], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    outbox = Path(tmp_path) / "demo" / "outbox"
    fixtures = Path(__file__).resolve().parent.parent / "mailbox_fixtures"
    drafted = sum(1 for p in fixtures.glob("*.expect.toml") if 'status = "drafted"' in p.read_text())
    assert len(list(outbox.glob("*.eml"))) == drafted
    assert f"sent {drafted} answers" in proc.stdout


@pytest.mark.parametrize("width", [60, 80, 120])
def test_the_demo_table_shows_ids_and_statuses_in_full_at_any_terminal_width(sqlite_engine, width):
    import io

    from rich.console import Console

    from consultant.demo import drafted_table
    from support import drafted

    settings = make_settings(str(sqlite_engine.url))
    ids = [drafted(sqlite_engine, settings, question_bytes(n)) for n in (1, 2)]
    console = Console(width=width, file=io.StringIO())
    console.print(drafted_table(sqlite_engine, width))
    lines = [line for line in console.file.getvalue().splitlines() if line.startswith("│")]
    assert [line.split("│")[1:3] for line in lines] == [[f"{i:>5} ", " drafted     "] for i in ids]
    assert all(len(line) <= width for line in console.file.getvalue().splitlines())
