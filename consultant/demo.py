"""The demo: the real pipeline on embedded servers, fed with the synthetic questions in mailbox_fixtures/.

Questions come from an in-process IMAP server (pymap), answers go to an in-process SMTP sink that
writes each one as an .eml file under var/demo/outbox/. Nothing leaves the machine.
"""
from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import delete, select
from sqlmodel import Session

from . import queries
from .codetables import Release
from .config import Settings
from .db import make_engine, upgrade
from .demo_servers import DemoImapServer, DemoSmtpSink
from .logs import setup as setup_logging
from .models import Checkpoint, Event, Question, RawMessage, Reply

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "mailbox_fixtures"
SERVICE = "ask@caseconsultant.test"
REVIEWER = "demo-reviewer"
OPERATOR = "demo-operator"


def fixture_messages(folder: Path = FIXTURES) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.glob("*.eml"))]


def demo_settings(var: Path, imap_port: int, password: str, smtp_port: int, **sections) -> Settings:
    data = {
        "service": {"address": SERVICE},
        "database": {"url": f"sqlite:///{var / 'demo.db'}"},
        "imap": {"host": "127.0.0.1", "port": imap_port, "security": "plain", "username": SERVICE,
                 "password": password, "idle": True, "after_fetch": "flag"},
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "plain", "sent_folder": "Sent"},
        "worker": {"poll_every": 30, "send_every": 2},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return Settings.model_validate(data)


def write_config(var: Path, settings: Settings) -> Path:
    """A config file for running other commands (queue, show) against the demo database."""
    path = var / "demo.toml"
    path.write_text("# Written by `consultant demo`: use with --config to look at the demo database.\n"
                    f'[service]\naddress = "{SERVICE}"\n\n[database]\nurl = "{settings.database.url}"\n')
    return path


def prepare_database(engine, console: Console) -> None:
    """Create the schema, load the bundled codes once, and clear questions from an earlier demo."""
    from .cli.admin import load_bundled

    upgrade(engine)
    with Session(engine) as session:
        kinds = set(session.execute(select(Release.kind)).scalars())
    if not {"starter", "icd10cm"} <= kinds:
        console.print("loading the bundled codes (once)")
        load_bundled(engine, icd="icd10cm" not in kinds)
    with Session(engine) as session:
        for table in (Event, Reply, RawMessage, Question, Checkpoint):
            session.execute(delete(table))
        session.commit()


def drafted_table(engine, width: int = 120) -> Table:
    """One row per question. id and status always show in full (the printed commands name the
    ids); the other columns share what is left of the terminal and end in an ellipsis."""
    table = Table(title="What the worker did with each question")
    table.add_column("id", no_wrap=True, justify="right", width=4)
    table.add_column("status", no_wrap=True, width=11)
    shares = (("from", 26), ("subject", 34), ("codes asked", 30), ("reply / reason", 34))
    room = max(4 * 6, width - (4 + 11) - 3 * 6 - 1)  # 6 columns: 3 cells of padding and border each
    for name, share in shares:
        table.add_column(name, no_wrap=True, overflow="ellipsis",
                         width=min(share, max(6, room * share // sum(s for _, s in shares))))
    with Session(engine) as session:
        rows = session.execute(select(Question, Reply.kind).outerjoin(Reply, (Reply.question_id == Question.id) & (Reply.purpose == "answer"))
                               .order_by(Question.id)).all()
    for q, kind in rows:
        asked = " ".join(c["code"] for c in (q.codes or []) if not c["quoted"])
        table.add_row(str(q.id), q.status, q.from_addr or "-", (q.subject or "")[:48], asked[:40],
                      kind or (q.reason or "")[:40])
    return table


def desk_logins(engine) -> str:
    """A reviewer and an operator for the desk, with a new random password each run (printed)."""
    from . import accounts

    password = secrets.token_urlsafe(12)
    with Session(engine) as session:
        for name, role in ((REVIEWER, "reviewer"), (OPERATOR, "operator")):
            known = {u.name for u in accounts.users(session)}
            if name in known:
                accounts.set_password(session, name, password)
                accounts.set_disabled(session, name, False)
            else:
                accounts.add(session, name, role, password)
        session.commit()
    return password


def desk_port(preferred: int) -> int | None:
    """web.port if it is free, else None (any free port)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return None


def approve_all(engine) -> int:
    """What `demo --once` does in place of a person: approve every draft as the demo reviewer."""
    from . import review

    with Session(engine) as session:
        ids = session.execute(select(Question.id).where(Question.status == "drafted")
                              .order_by(Question.id)).scalars().all()
        for qid in ids:
            review.approve(session, qid, REVIEWER, 30)
        session.commit()
    return len(ids)


def send_all(engine, settings) -> int:
    from .send import Sender

    sender, sent = Sender(engine, settings), 0
    while True:
        counts = sender.run_once()
        sent += counts.sent
        if counts.sent + counts.retrying + counts.failed == 0:
            return sent


def run(console: Console, var: Path, once: bool) -> int:
    """Serve the fixtures over IMAP, poll and draft them, show the result; then either approve and
    send everything (once) or keep the worker running for a person to review (until Ctrl-C)."""
    from .worker import Worker

    var.mkdir(parents=True, exist_ok=True)
    setup_logging("INFO", str(var / "demo.log"))  # decisions go to the log, the summary to the screen
    outbox = var / "outbox"
    shutil.rmtree(outbox, ignore_errors=True)
    outbox.mkdir()
    password = secrets.token_urlsafe(12)
    messages = fixture_messages()
    with DemoImapServer(SERVICE, password, messages) as imap, DemoSmtpSink(outbox) as sink:
        settings = demo_settings(var, imap.port, password, sink.port)
        engine = make_engine(settings.database.url)
        try:
            prepare_database(engine, console)
            config_path = write_config(var, settings)
            console.print(f"embedded IMAP server on 127.0.0.1:{imap.port} holding {len(messages)} "
                          f"questions from {FIXTURES.name}/; SMTP sink on 127.0.0.1:{sink.port} "
                          f"writing to {outbox}/")
            worker = Worker(engine, settings)
            result = worker.poll_once()
            worker.close()
            console.print(drafted_table(engine, console.width))
            if once:
                approved = approve_all(engine)
                sent = send_all(engine, settings)
                with Session(engine) as session:
                    counts = queries.counts(session)
                console.print("  ".join(f"{name}: {n}" for name, n in counts.items() if n))
                console.print(f"The log of every decision is in {var / 'demo.log'}.")
                console.print(f"approved {approved} drafts as {REVIEWER}; sent {sent} answers; "
                              f"{len(list(outbox.glob('*.eml')))} .eml files in {outbox}/")
                return 0 if result.imap_ok and result.db_ok and sent == approved else 1
            from .web.serve import DeskThread

            password = desk_logins(engine)
            web = settings.web.model_copy(update={"secret_key": secrets.token_hex(32)})  # new each run
            desk = DeskThread(settings.model_copy(update={"web": web}), engine, port=desk_port(web.port)).start()
            console.print(
                f"\nThe review desk: {desk.url}/  sign in as {REVIEWER} (or {OPERATOR} for the operator "
                f"view) with the password {password}\n"
                f"The worker keeps watching the demo inbox and sends what you approve. Or, in another terminal:\n"
                f"  .venv/bin/consultant --config {config_path} queue\n"
                f"  .venv/bin/consultant --config {config_path} show 1\n"
                f"  .venv/bin/consultant --config {config_path} approve 1 --as you\n"
                f"and the answer appears in {outbox}/ within seconds. Ctrl-C to stop.", soft_wrap=True)
            try:
                Worker(engine, settings).run()
            finally:
                desk.stop()
            console.print("demo stopped; the database stays in " + str(var / "demo.db"))
            return 0
        finally:
            engine.dispose()
