"""Nesting and expansion bombs within the size limit: each is quarantined, or read, inside a fixed
memory ceiling. The stages run in a child process whose address space is capped with RLIMIT_AS,
so a bomb that escaped its bounds fails with MemoryError there instead of exhausting this machine.
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap

import pytest
from sqlmodel import Session

from consultant import operator
from consultant.config import Limits
from consultant.models import Question
from consultant.process import Processor
from hostile import ENDED, tally, tried  # noqa: F401  (tally is a fixture)
from support import make_settings

pytestmark = pytest.mark.usefixtures("tally")

# The whole child: interpreter, imports (about 40 MB), the bomb itself and all the work on it.
CEILING = 256 * 1024 * 1024
SIZE = Limits().max_message_bytes
HEAD = (b"From: Jane Doe <jane@clinic.test>\r\nTo: ask@consult.test\r\nSubject: bomb\r\n"
        b"Message-ID: <bomb@clinic.test>\r\nMIME-Version: 1.0\r\n")


def _nested_multiparts(depth: int, tail: bytes = b"") -> bytes:
    opened = b"".join(b'Content-Type: multipart/mixed; boundary="n%d"\r\n\r\n--n%d\r\n' % (i, i)
                      for i in range(depth))
    return HEAD + opened + b"Content-Type: text/plain\r\n\r\nIs 99213 right?\r\n" + tail


def _parts(count: int, body: bytes) -> bytes:
    return (HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            + (b"--b\r\n\r\n" + body + b"\r\n") * count + b"--b--\r\n")


def _html(source: bytes) -> bytes:
    return HEAD + b"Content-Type: text/html; charset=utf-8\r\n\r\n" + source


def _fill(unit: bytes, room: int = SIZE - 4096) -> bytes:
    return unit * (room // len(unit))


# name -> (raw bytes, the limit that must quarantine it, or None when it must be read)
BOMBS = {
    "5,000 nested multiparts": (_nested_multiparts(5000), "limits.max_depth"),
    # Every line was tested against every enclosing boundary: minutes of work before the fix.
    "900 nested multiparts, then 750,000 short lines": (
        _nested_multiparts(900, _fill(b"ab\r\n", 3_000_000)), "limits.max_depth"),
    "20,000 nested message/rfc822": (
        HEAD + b"Content-Type: message/rfc822\r\n\r\n" * 20_000 + b"\r\nIs 99213 right?\r\n",
        "limits.max_parts"),
    "300,000 tiny parts": (_parts(300_000, b"x" * 20), "limits.max_parts"),
    "10 million empty lines": (HEAD + b"\r\n" + _fill(b"\n"), "limits.max_lines"),
    "a million encoded words in Subject": (
        HEAD.replace(b"Subject: bomb", b"Subject: " + _fill(b"=?utf-8?q?a?= ")) + b"\r\nhi\r\n",
        "limits.max_header_bytes"),
    "a million header fields": (HEAD + _fill(b"X-A: b\r\n") + b"\r\nhi\r\n", "limits.max_header_bytes"),
    "a header folded a million times": (
        HEAD + b"X-Fold: a" + _fill(b"\r\n a") + b"\r\n\r\nhi\r\n", "limits.max_header_bytes"),
    "encoded words filling an attachment's filename": (
        HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\n\r\nIs 99213 right?\r\n--b\r\n"
        b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="'
        + _fill(b"=?utf-8?b?w6k=?= ", SIZE - 8192) + b'"\r\n\r\nJVBERi0=\r\n--b--\r\n', None),
    "one 9 MB line": (HEAD + b"\r\n" + b"9" * (SIZE - 4096), None),
    "base64 of 7 MB of codes": (
        HEAD + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(_fill(b"99213 J1100 M54.16 ", SIZE * 7 // 10)), None),
    "quoted-printable escapes": (
        HEAD + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        + _fill(b"=39=39=32=31=33 =\r\n"), None),
    "4-byte characters": (
        HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + _fill("\U0001f600 99213\n".encode()), None),
    "nested <ol><li>": (_html(_fill(b"<ol><li>99213")), None),
    # Each different code is looked up and answered: 3,000 took the worker 23 s before max_codes.
    "90,000 different codes": (
        HEAD + b"\r\n" + b" ".join(b"%05d" % n for n in range(10_000, 99_607)) + b"\r\n", None),
    "nested <blockquote>": (_html(_fill(b"<blockquote>J1100")), None),
    "nested <div class=gmail_quote>": (_html(_fill(b'<div class="gmail_quote">x')), None),
    "unclosed tags": (_html(_fill(b"<a <b")), None),
    "entities": (_html(_fill(b"&#128512;&nbsp;")), None),
    "nested <pre> in lists": (_html(_fill(b"<ul><li><pre>99213 x\n\n")), None),
}

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, ({ceiling}, {ceiling}))
    from consultant.codeindex import CodeIndex
    from consultant.config import Limits
    from consultant.extract import find_codes
    from consultant.mimebounds import Refused, header_block
    from consultant.reading import UnreadableMessage, read_message
    from consultant.screen import headers_of

    limits = Limits()
    index = CodeIndex(cpt=["99213"], hcpcs=["J1100"], icd=["M54.16"])
    raw = open(sys.argv[1], "rb").read()
    started = time.process_time()
    try:
        headers_of(header_block(raw, limits.max_header_bytes))
        reading = read_message(raw, **limits.reading())
        findings = find_codes(reading.new_text, index, reading.quoted_text)
        result = dict(outcome="read", codes=len(findings.codes), text=len(reading.body_text))
    except (Refused, UnreadableMessage) as refused:
        result = dict(outcome="quarantined", reason=refused.reason)
    # ru_maxrss would report the forking parent's size; VmHWM is this process's own peak.
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    result.update(cpu=round(time.process_time() - started, 1),
                  peak_rss_mb=int(status["VmHWM"].split()[0]) // 1024,
                  peak_vm_mb=int(status["VmPeak"].split()[0]) // 1024)
    print(json.dumps(result))
""").format(ceiling=CEILING)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BOMBS))
def test_a_bomb_is_refused_or_read_within_the_memory_ceiling(name, tmp_path):
    raw, limit = BOMBS[name]
    assert len(raw) <= SIZE  # every bomb gets past fetch's size limit
    path = tmp_path / "bomb.eml"
    path.write_bytes(raw)
    tried("bombs", raw)
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]  # MemoryError under the ceiling fails here
    result = json.loads(done.stdout)
    ENDED[f"bombs: {name}: {json.dumps(result)}"] += 1
    if limit is None:
        assert result["outcome"] == "read", result
        assert result["text"] <= Limits().max_body_chars
    else:
        assert result["outcome"] == "quarantined" and limit in result["reason"], result


@pytest.mark.slow
def test_bombs_through_the_pipeline_end_quarantined_at_parse_or_drafted(sqlite_engine):
    """A few bombs of each kind through inject and the Processor, with the default limits."""
    chosen = {"5,000 nested multiparts": "limits.max_depth", "300,000 tiny parts": "limits.max_parts",
              "a million header fields": "limits.max_header_bytes",
              "10 million empty lines": "limits.max_lines", "90,000 different codes": "limits.max_codes",
              "nested <blockquote>": None}
    ids = {}
    with Session(sqlite_engine) as session:
        for n, name in enumerate(chosen):
            raw = BOMBS[name][0].replace(b"<bomb@", b"<bomb%d@" % n, 1)  # one Message-ID each
            ids[name] = operator.inject(session, raw, "test", "bomb.eml")
            tried("bombs", raw)
        session.commit()
    settings = make_settings(str(sqlite_engine.url), screen=dict(max_per_sender_per_hour=0))
    with Processor(sqlite_engine, settings) as processor:
        processor.run_until_done()
    with Session(sqlite_engine) as session:
        for name, qid in ids.items():
            question = session.get(Question, qid)
            limit = chosen[name]
            if limit is None:
                assert question.status == "drafted", (name, question.status, question.reason)
            else:
                assert (question.status, question.stage) == ("quarantined", "parse"), name
                assert limit in question.reason, (name, question.reason)
