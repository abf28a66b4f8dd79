"""fetch.dedupe_key reads a plain Message-ID line off the bytes: the same value as the header
parser over the mailbox fixtures and many generated header blocks (folded, repeated, 8-bit,
encoded, commented, any line ending), with the parser still used for what is not plain."""
import hashlib
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consultant import fetch
from consultant.fetch import dedupe_key, message_id_field
from consultant.mimebounds import header_block_size
from consultant.reading import parse_msg_ids
from consultant.screen import headers_of

FIXTURES = sorted((Path(__file__).resolve().parent.parent / "mailbox_fixtures").glob("*.eml"))

NAMES = [b"Message-ID", b"Message-Id", b"message-id", b"MESSAGE-ID", b"MeSsAgE-iD", b"Message-ID ",
         b"Resent-Message-ID", b"X-Message-ID", b"Message-IDs", b" Message-ID", b"Message_ID", b"In-Reply-To"]
VALUES = [b"<a1.b2@clinic.test>", b" <a1.b2@clinic.test>", b"\t<x@y>", b"<x@y>  ", b"<x@y>\t", b"",
          b"<x@y> (sent by a bot)", b"(comment <c@d>) <x@y>", b"x@y", b"<a b@y>", b"<x@y><z@w>",
          b"=?utf-8?q?=3Cx=40y=3E?=", b"<\xe9t\xe9@y>", b"<x@y>\xff", b"<x\x00@y>", b"<x@y>\x0b",
          b"<x@y>\x7f", b": <x@y>", b"<" + b"a" * 300 + b"@y>", b"<x@y> <x@y>", b"<x@[127.0.0.1]>"]
OTHER = [b"From: Jane <jane@clinic.test>", b"To: ask@consult.test", b"Subject: 99213 and Message-ID: <s@t>",
         b"Date: Mon, 2 Mar 2026 10:00:00 -0500", b"From jane@clinic.test Mon Mar  2 10:00:00 2026",
         b"Received: from a\r\n\tby b", b"X-Note: line\r\n Message-ID: <folded@x>", b": no name",
         b"\tcontinued", b"Content-Type: text/plain"]
EOLS = [b"\r\n", b"\n", b"\r"]


def reference(block: bytes) -> str:
    """What the header parser makes of the block's Message-ID field."""
    return str(headers_of(block).get("Message-ID", ""))


def block_of(raw: bytes) -> bytes:
    return raw[:header_block_size(raw, len(raw))]


def random_message(rnd: random.Random) -> bytes:
    lines = []
    for _ in range(rnd.randrange(8)):
        if rnd.random() < 0.45:
            line = rnd.choice(NAMES) + b":" + rnd.choice(VALUES)
            if rnd.random() < 0.15:  # folded
                line += rnd.choice([b"\r\n ", b"\n\t", b"\r  "]) + rnd.choice(VALUES)
        else:
            line = rnd.choice(OTHER)
        lines.append(line)
    eol = rnd.choice(EOLS)
    head = b"".join(line + (rnd.choice(EOLS) if rnd.random() < 0.1 else eol) for line in lines)
    if rnd.random() < 0.1:
        return head.rstrip(b"\r\n")  # the message ends inside its last header line
    return head + eol + b"Message-ID: <body@x>" + eol + b"Hello" + eol


def test_the_fixtures_read_the_same_and_take_the_plain_path(monkeypatch):
    assert len(FIXTURES) > 20
    parsed = count_parses(monkeypatch)
    for path in FIXTURES:
        block = block_of(path.read_bytes())
        assert message_id_field(block) == reference(block), path.name
    assert parsed == []  # every fixture has one plain Message-ID line


def count_parses(monkeypatch) -> list:
    calls = []

    def counted(block):
        calls.append(block)
        return headers_of(block)
    monkeypatch.setattr(fetch, "headers_of", counted)
    return calls


def test_generated_headers_read_as_the_parser_reads_them(monkeypatch):
    parsed = count_parses(monkeypatch)
    rnd = random.Random(20261129)
    found = 0
    for n in range(20000):
        raw = random_message(rnd)
        block = block_of(raw)
        value = message_id_field(block)
        assert value == reference(block), raw
        found += bool(value)
    print(f"{len(parsed)} of 20000 parsed, {found} with a Message-ID field")
    # Both ways were taken many times: read off the bytes, and parsed.
    assert 2000 < len(parsed) < 18000 and found > 5000


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(NAMES + OTHER), st.binary(max_size=20)), max_size=6),
       st.lists(st.sampled_from(VALUES + [b"\r\n", b"\n", b"\r", b" ", b"\t", b":"]), max_size=8))
def test_hypothesis_header_soups_read_as_the_parser_reads_them(fields, bits):
    raw = b"".join(f + (b":" if i % 2 else b"") for i, f in enumerate(fields)) + b"".join(bits)
    block = block_of(raw)
    assert message_id_field(block) == reference(block)


@pytest.mark.parametrize("raw,key", [
    (b"Message-ID: <a@b>\r\n\r\nbody", "<a@b>"),
    (b"message-id:<a@b> (comment)\n\nbody", "<a@b>"),
    (b"Message-ID:\r\n <folded@b>\r\n\r\nbody", "<folded@b>"),
    (b"Message-ID: <first@b>\r\nMessage-ID: <second@b>\r\n\r\n", "<first@b>"),
    (b"Subject: x\r\n\r\nMessage-ID: <in-body@b>\r\n", None),
    (b"Message-ID: nothing sane\r\n\r\n", None),
])
def test_the_key_is_the_first_sane_message_id_of_the_header_block(raw, key):
    got, message_id = dedupe_key(raw)
    if key is None:
        assert (got, message_id) == ("sha256:" + hashlib.sha256(raw).hexdigest(), None)
    else:
        assert (got, message_id) == (key, key)
        assert parse_msg_ids(reference(block_of(raw)))[0] == key
