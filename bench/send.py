"""Sending: N approved replies through the real Sender, against a bare smtplib loop.

Prints one JSON line. A seeded SQLite database gets N questions, drafted by the real Processor and
approved (not timed); each round works on a fresh copy of that file. The SMTP server is the tests'
aiosmtpd server (tests/servers/smtp.py) in a child process, so its work does not share our GIL.

- bare: the same messages, built beforehand with consultant.mailout.build, sent by smtplib over
  one reused connection (send_message, as the Sender calls it); nothing else.
- ours: consultant.send.Sender.run_until_done(), the code `consultant send --once` runs: a batch
  claimed with leases in one transaction, state changes and audit events, build, a new connection
  per batch (send.batch_size, default 50), each reply's outcome committed on its own.
- ours with the Sent folder: the same with smtp.sent_folder on a throwaway Dovecot (a copy put
  there before sending, marked handed before the data and delivered after), reported against the
  bare loop and against a bare loop that also APPENDs each message to the folder. Each of these
  two runs starts with an empty folder of its own (a new account).
Each figure is the best of --rounds rounds; a round runs the four one after the other, so that
on a shared machine each pair being compared sees much the same load. ratio = ours / bare.

  bench/send.py                    500 replies
  bench/send.py --messages 2000 --rounds 3
"""
from __future__ import annotations

import argparse
import multiprocessing
import shutil
import smtplib
import tempfile
import time
from pathlib import Path

from common import (
    add_seed_option,
    emit,
    imap_login,
    questions,
    seeded_database,
    stop_on_sigterm,
)

TARGET = "ratio <= 1.5 without the Sent folder"


def serve_smtp(ports, stop) -> None:
    """Child process: the tests' SMTP server until told to stop."""
    from servers.smtp import SmtpServer

    with SmtpServer() as server:
        ports.put(server.port)
        stop.wait()


def approved_database(url: str, settings, n: int, seed: Path | None) -> None:
    from sqlmodel import Session

    from consultant import operator, review
    from consultant.db import make_engine
    from consultant.process import Processor

    seeded_database(url, seed)
    engine = make_engine(url)
    with Session(engine) as session:
        ids = [operator.inject(session, raw, "bench", f"{i}.eml") for i, raw in enumerate(questions(n))]
        session.commit()
    with Processor(engine, settings) as processor:
        counts = processor.run_until_done()
    if counts.drafted != n:
        raise RuntimeError(f"only {counts.drafted} of {n} questions were drafted: {counts}")
    with Session(engine) as session:
        for qid in ids:
            review.approve(session, qid, "bench", 30)
        session.commit()
    engine.dispose()


def replies(url: str, settings) -> list[tuple[str, object]]:
    """(recipient, message) for every approved reply, built as the Sender builds them."""
    from sqlalchemy import select
    from sqlmodel import Session

    from consultant.db import make_engine
    from consultant.mailout import build
    from consultant.models import Reply

    engine = make_engine(url)
    with Session(engine) as session:
        built = [(r.to_addr, build(r, settings)) for r in session.execute(select(Reply).order_by(Reply.id)).scalars()]
    engine.dispose()
    return built


def bare(settings, messages, sent_folder_user=None) -> float:
    """smtplib over one connection (and, when given, an APPEND of each to the Sent folder)."""
    started = time.perf_counter()
    imap = imap_login(sent_folder_user) if sent_folder_user else None
    client = smtplib.SMTP(settings.smtp.host, settings.smtp.port, timeout=30)
    for to_addr, msg in messages:
        if imap is not None:
            imap.append("Sent", msg.as_bytes())
        client.send_message(msg, from_addr=settings.service.address, to_addrs=[to_addr])
    client.quit()
    if imap is not None:
        imap.logout()
    return time.perf_counter() - started


def ours(template: Path, folder: Path, settings_for, n: int) -> float:
    from consultant.db import make_engine
    from consultant.send import Sender

    path = folder / f"round-{time.monotonic_ns()}.db"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    settings = settings_for(url)
    engine = make_engine(url)
    started = time.perf_counter()
    counts = Sender(engine, settings).run_until_done()
    seconds = time.perf_counter() - started
    engine.dispose()
    if counts.sent != n:
        raise RuntimeError(f"the Sender sent {counts.sent} of {n}: {counts}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500, help="Approved replies (default 500).")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of each; the best counts (default 3).")
    add_seed_option(parser)
    args = parser.parse_args()
    stop_on_sigterm()
    from servers.dovecot import Dovecot
    from support import make_settings

    context = multiprocessing.get_context("fork")  # before any thread of ours exists
    ports, stop = context.Queue(), context.Event()
    smtp_process = context.Process(target=serve_smtp, args=(ports, stop), daemon=True)
    smtp_process.start()
    try:
        port = ports.get(timeout=30)
        smtp = dict(host="127.0.0.1", port=port, security="plain")
        with Dovecot() as dovecot, tempfile.TemporaryDirectory(prefix="bench-send-") as tmp:
            folder = Path(tmp)
            template = folder / "approved.db"
            # The global rate limit would hold all but 500 of a big batch; the rule still runs.
            drafting = make_settings(f"sqlite:///{template}", smtp=smtp, screen={"max_per_hour": 2 * args.messages + 500})
            approved_database(f"sqlite:///{template}", drafting, args.messages,
                              args.seeded_sqlite)
            messages = replies(f"sqlite:///{template}", make_settings(f"sqlite:///{template}", smtp=smtp))
            plain = lambda url: make_settings(url, smtp=smtp)  # noqa: E731
            # Each run with a Sent folder appends to a fresh, empty one: APPEND and STORE slow
            # down as a maildir grows, so a shared folder would favour whichever ran first.
            with_sent = lambda url: make_settings(url, imap_user=dovecot.add_user(),  # noqa: E731
                                                  smtp=dict(smtp, sent_folder="Sent"))
            settings = plain(f"sqlite:///{template}")
            rounds = [(bare(settings, messages), ours(template, folder, plain, args.messages),
                       bare(settings, messages, dovecot.add_user()), ours(template, folder, with_sent, args.messages))
                      for _ in range(args.rounds)]
            bare_s, ours_s, bare_sent_s, ours_sent_s = (min(figures) for figures in zip(*rounds))
    finally:
        stop.set()
        smtp_process.join(15)
    n = args.messages
    emit("send", {"n": n, "rounds": args.rounds, "rate_per_s": round(n / ours_s, 1), "ratio": round(ours_s / bare_s, 2),
                  "bare_rate_per_s": round(n / bare_s, 1), "ours_s": round(ours_s, 3), "bare_s": round(bare_s, 3),
                  "sent_folder": {"rate_per_s": round(n / ours_sent_s, 1), "ratio": round(ours_sent_s / bare_s, 2),
                                  "ratio_to_bare_with_append": round(ours_sent_s / bare_sent_s, 2),
                                  "ours_s": round(ours_sent_s, 3), "bare_with_append_s": round(bare_sent_s, 3)},
                  "target": TARGET})


if __name__ == "__main__":
    main()
