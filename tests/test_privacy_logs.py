"""No patient information in the logs: a full run at DEBUG into a file (real Dovecot fetch,
processing, review, sending through the real SMTP server with a refusal and an outage, a quarantined
and an ignored message, and the same through `consultant` subprocesses) on SQLite and PostgreSQL,
then every line scanned for the askers' addresses, names, subjects, body sentences and identifiers."""
import logging
import os
import subprocess
import sys

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from support import make_settings, smtp_section

from consultant import logs, review
from consultant.logs import scrub
from consultant.models import Question, utcnow
from consultant.send import Sender
from consultant.worker import Worker

# (name, address, subject, sentences, identifiers): every one of them made up.
ASKERS = [
    ("Priya Raman", "priya.raman@lakeside-ortho.test", "Knee injection for Mrs Okafor",
     ["Mrs Okafor came back limping after her fall on the ice.", "Can I bill 20610-RT with J1100 x2 for her?"],
     ["MRN: 00991234", "(404) 555-0143"]),
    ("Tomas Lindqvist", "t.lindqvist@northgate-spine.test", "Myelogram billing for Gerald Pike",
     ["Gerald Pike had a thoracic myelogram and a CT right after.", "Is 62303 with 72128 allowed?"],
     ["SSN 123-45-6789", "DOB 01/02/1960"]),
    ("Amara Osei", "amara.osei@riverbend-fp.test", "Office visit with a joint injection",
     ["The visit for Lucille Barrow turned into a shoulder injection.", "Does 99213 need modifier 25 here?"],
     ["member ID W778812345", "cell 678-555-0182"]),
    ("Dmitri Volkov", "dvolkov@harborview-rad.test", "Therapy units for Otto Brandt",
     ["Otto Brandt had forty minutes of therapeutic exercise.", "How many units of 97110 can I bill?"],
     ["Medicaid # 4455667788", "date of birth March 3, 1955"]),
    ("Keiko Tanaka", "keiko.tanaka@summit-peds.test", "Follow-up visit coding for Hana",
     ["Little Hana came back for her asthma follow-up visit.", "Is 99214 right for this visit?"],
     ["DOB 7/14/2015", "fax 770-555-0107"]),
]
AUTOREPLY_FROM = ("Priya Raman", "priya.raman@lakeside-ortho.test")


def question(n: int, asker) -> bytes:
    name, address, subject, sentences, identifiers = asker
    body = "Hello,\r\n\r\n" + " ".join(sentences) + "\r\n" + "; ".join(identifiers) + "\r\n\r\nThanks,\r\n" + name
    return (f"From: {name} <{address}>\r\nTo: ask@caseconsultant.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <privacy{n}@asker.test>\r\n\r\n{body}\r\n").encode()


def autoreply() -> bytes:
    name, address = AUTOREPLY_FROM
    return (f"From: {name} <{address}>\r\nTo: ask@caseconsultant.test\r\nSubject: Out of office: away\r\n"
            f"Auto-Submitted: auto-replied\r\nMessage-ID: <away@asker.test>\r\n\r\n"
            f"I am away until Monday; for Mrs Okafor call (404) 555-0143.\r\n").encode()


def too_many_parts() -> bytes:
    name, address, subject, sentences, _ = ASKERS[1]
    parts = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\n{sentences[0]}\r\n" for _ in range(12))
    return (f"From: {name} <{address}>\r\nTo: ask@caseconsultant.test\r\nSubject: {subject} (scans)\r\n"
            f'Message-ID: <parts@asker.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n'
            f"\r\n{parts}--b--\r\n").encode()


# The identifying part of each identifier above.
IDENTIFIERS = ["00991234", "555-0143", "123-45-6789", "01/02/1960", "W778812345", "555-0182", "4455667788",
               "March 3, 1955", "7/14/2015", "555-0107"]


def forbidden() -> list[str]:
    """What may never appear in a log line."""
    out = list(IDENTIFIERS)
    for name, address, subject, sentences, _ in ASKERS:
        out += [address, name, subject, *sentences]
    return [s.lower() for s in out]


@pytest.fixture
def restore_logging():
    names = ("consultant", *logs.THIRD_PARTY, "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level, logging.getLogger(n).propagate)
             for n in names}
    yield
    for n, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(n)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


def scan(text: str, where: str) -> None:
    low = text.lower()
    leaks = [s for s in forbidden() if s in low]
    assert not leaks, f"{where} leaks {leaks}:\n{text}"


def cli(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "consultant", *args], env=dict(os.environ, **env),
                          capture_output=True, text=True, timeout=180)


def test_a_full_run_at_debug_logs_no_address_name_subject_sentence_or_identifier(
        db_url, engine, dovecot, imap_user, smtp, tmp_path, restore_logging):
    log_file = tmp_path / "consultant.log"
    settings = make_settings(db_url, imap_user, smtp=smtp_section(smtp),
                             log={"level": "DEBUG", "file": str(log_file)}, limits={"max_parts": 8})
    logs.setup("DEBUG", str(log_file))
    for n, asker in enumerate(ASKERS[:4], 1):
        dovecot.deliver(imap_user, question(n, asker))
    dovecot.deliver(imap_user, autoreply())
    dovecot.deliver(imap_user, too_many_parts())
    worker = Worker(engine, settings)
    try:
        processed = worker.poll_once().processed
    finally:
        worker.close()
    assert (processed.drafted, processed.ignored, processed.quarantined) == (4, 1, 1)

    with Session(engine) as session:  # approve one, edit one, reject one with a notice
        for qid in (1, 2, 3, 4):
            review.claim(session, qid, "bob", 30)
        review.approve(session, 1, "bob", 30)
        review.approve(session, 2, "bob", 30, text="Yes: 62303 and 72128 go together here.\n")
        review.reject(session, 3, "bob", "asked twice", 30, notify=True, templates=settings.templates_dir(),
                      service_name="CaseConsultant", domain="caseconsultant.test")
        session.commit()
    sender = Sender(engine, settings, owner="sender-1")
    smtp.stop()  # an outage first: nothing goes, it is logged once
    assert sender.run_once().sent == 0
    smtp.start()
    assert sender.run_once().sent == 3
    # A refusal that echoes the recipient and more, as real servers do.
    with Session(engine) as session:
        review.approve(session, 4, "bob", 30)
        session.commit()
    smtp.fail_next("RCPT", 550, f"5.1.1 <{ASKERS[3][1]}>: no such user ({ASKERS[3][0]}, fax 770-555-0107)")
    assert Sender(engine, settings, owner="sender-1").run_once().failed == 1

    # The same paths through the command line, logging into the same file.
    dovecot.deliver(imap_user, question(5, ASKERS[4]))
    env = {"CONSULTANT_DATABASE__URL": db_url, "CONSULTANT_PATHS__VAR": str(tmp_path),
           "CONSULTANT_LOG__LEVEL": "DEBUG", "CONSULTANT_LOG__FILE": str(log_file),
           "CONSULTANT_IMAP__HOST": imap_user.host, "CONSULTANT_IMAP__PORT": str(imap_user.port),
           "CONSULTANT_IMAP__SECURITY": "plain", "CONSULTANT_IMAP__USERNAME": imap_user.username,
           "CONSULTANT_IMAP__PASSWORD": imap_user.password, "CONSULTANT_IMAP__IDLE": "false",
           "CONSULTANT_SMTP__HOST": smtp.host, "CONSULTANT_SMTP__PORT": str(smtp.port),
           "CONSULTANT_SMTP__SECURITY": "plain"}
    runs = [cli("poll", "--once", env=env), cli("claim", "7", "--as", "alice", env=env),
            cli("approve", "7", "--as", "alice", env=env)]
    smtp.stop()
    runs.append(cli("send", "--once", env=env))  # exit 4: SMTP unreachable
    smtp.start()
    runs += [cli("send", "--once", env=env), cli("sweep", "--once", env=env),
             cli("approve", "999", "--as", "alice", env=env)]
    assert [r.returncode for r in runs] == [0, 0, 0, 4, 0, 0, runs[-1].returncode]
    assert runs[-1].returncode != 0 and "sent 1" in runs[4].stdout
    for run in runs:
        scan(run.stdout + run.stderr, f"`consultant {' '.join(run.args[3:])}`")

    text = log_file.read_text()
    scan(text, "the log")
    # The log is not empty: the decisions are there, with senders redacted and ids as the key.
    for expected in ("question 1 drafted as", "ignored by", "quarantined at", "sent to p***@lakeside-ortho.test",
                     "unreachable", "question 4: answer failed: SMTP 550: 5.1.1 (server text not logged)",
                     "question 7"):
        assert expected in text, expected


def test_a_database_error_that_echoes_the_mail_is_logged_without_it(engine, tmp_path, restore_logging):
    log_file = tmp_path / "consultant.log"
    logs.setup("DEBUG", str(log_file))
    name, address, subject, sentences, identifiers = ASKERS[1]
    row = dict(status="received", dedupe_key=f"<{address}>", from_addr=address, from_name=name, subject=subject,
               new_text=" ".join(sentences + identifiers), attempts=0, size=1, body_downloaded=True,
               received_at=utcnow(), updated_at=utcnow())
    with Session(engine) as session:
        session.execute(insert(Question).values(**row))
        session.commit()
        try:
            session.execute(insert(Question).values(**row))  # the same dedupe key again
        except IntegrityError as exc:
            session.rollback()
            assert sentences[0] in str(exc)  # what the driver and SQLAlchemy echo
            logs.error.exception("storing the message failed")
    text = log_file.read_text()
    assert "IntegrityError" in text and "[parameters: (not logged)]" in text
    scan(text, "the log")


@pytest.mark.parametrize("line, kept, gone", [
    ("550 5.1.1 <jane.doe@clinic.test>: unknown", "j***@clinic.test", "jane.doe@"),
    ("refused: SSN 123-45-6789, DOB 01/02/1960", "SSN ***-**-****", "01/02/1960"),
    ('DETAIL:  Failing row contains (7, "Patient Ann Example", 99213).', "DETAIL: (not logged)", "Ann Example"),
    ("question 12 drafted as answer", "question 12 drafted as answer", None),
])
def test_every_line_is_scrubbed(line, kept, gone):
    out = scrub(line)
    assert kept in out
    assert gone is None or gone not in out


def test_a_risky_argument_to_a_plain_worker_line_is_still_scrubbed(tmp_path, restore_logging):
    """The worker's lines are ids and our own words, which skip the identifier patterns; the same
    line with an identifier, an address or a number shaped like one in its arguments does not."""
    log_file = tmp_path / "consultant.log"
    logs.setup("INFO", str(log_file))
    logs.vet.info("question %s drafted as %s", 4711, "answer")
    logs.vet.info("question %s drafted as %s", 4712, "MRN 00991234")
    logs.vet.info("question %s drafted as %s", 4713, ASKERS[0][1])
    logs.vet.info("question %s drafted as %s %s-%s", 4714, 404, 555, 1430)
    logs.vet.info("question %s drafted as %s", 4715, "ſsn 123456789")  # a non-ASCII look-alike label
    lines = log_file.read_text().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "question 4711 drafted as answer", "question 4712 drafted as MRN ********",
        "question 4713 drafted as p***@lakeside-ortho.test", "question 4714 drafted as *** ***-****",
        "question 4715 drafted as ſsn *********"]


def test_the_desks_server_logs_through_the_same_scrubbing(tmp_path, restore_logging):
    import logging.config

    log_file = tmp_path / "web.log"
    logging.config.dictConfig(logs.uvicorn_config("INFO", str(log_file)))
    name, address, subject, sentences, identifiers = ASKERS[2]
    try:
        raise ValueError(f"{sentences[0]} {identifiers[0]} {address}")
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /questions/3 HTTP/1.1" 200')
    text = log_file.read_text()
    assert "Exception in ASGI application" in text and "GET /questions/3" in text
    assert "ID **********" in text and "a***@riverbend-fp.test" in text
