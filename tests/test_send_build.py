"""Building and handing over one reply: build() makes the stdlib's own bytes (it only skips parsing
the same headers again for every message), picks a boundary found in no part, and transmit() gets
the message through dot-stuffing intact to the real aiosmtpd server."""
import email.policy
import random
import re
import smtplib
import string
from email.message import EmailMessage
from email.utils import formataddr, formatdate

import pytest

from consultant import mailout
from consultant.draft import one_line
from consultant.mailout import build, connect_smtp, flatten, transmit
from consultant.models import Reply
from support import make_settings, smtp_section

SETTINGS = make_settings()
DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")
BOUNDARY = re.compile(rb"===============\d{19}==")
# Pieces of hostile or awkward text: non-ASCII, long lines, dots and "From " at line starts,
# control characters, CR/LF in odd places, something that looks like a boundary.
PIECES = ["a", "word ", " ", "  ", "(", ")", "\\", ",", ";", ":", "[", "]", "@", "<x@y.test>", "=?", "?=", "\n", "\n\n", ".", "\n.", "\n..\n", "\r\n", "\r", "é", "ü", "€", "😀", "\t", "=",
          "=?utf-8?q?x?=", "-", "x" * 90, "y" * 1200, "\nFrom ", "\u2028", "\x00", "\x0b", "<b>", '"', "ß" * 40,
          "日本語", "\n--===============1234567890123456789==\n"]

# Usable addresses and message-ids, plain and not (build() writes the plain ones without parsing).
ADDRESSES = ["coder1@ridgeview-clinic.test", "a.b+c@x.test", "a..b@x.test", ".a@x.test", "a=?b@x.test", "x'y@z.test",
             "{}@x.test", "l" * 64 + "@" + "d" * 60 + ".test"]
IDS = ["<a(b)@c.test>", "<a:b@c.test>", "<a@[1.2.3.4]>", "<a..b@c.test>", "<.a@b.test>", "<a=?b@c.test>", "<a,b@c.test>",
       "<" + "l" * 70 + "@d.test>"]


def stdlib_message(reply: Reply) -> EmailMessage:
    """The reply as the stdlib's set_content and add_alternative make it, with build()'s headers."""
    msg = EmailMessage(policy=email.policy.default)
    for name, value in build(reply, SETTINGS).items()[:-2]:  # all but MIME-Version and Content-Type
        msg[name] = value
    text, html = (reply.edited_text, None) if reply.edited_text else (reply.text, reply.html)
    msg.set_content(text)
    msg.add_alternative(html if html is not None else build(reply, SETTINGS).get_payload(1).get_content(),
                        subtype="html")
    return msg


def comparable(data: bytes) -> bytes:
    return BOUNDARY.sub(b"BOUNDARY", DATE.sub(b"\r\nDate: -\r\n", data))


def replies(n: int, seed: int = 7):
    rng = random.Random(seed)

    def text(longest: int) -> str:
        return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, longest)))

    for i in range(n):
        yield Reply(id=i, question_id=i, kind="answer", to_addr=rng.choice(ADDRESSES),
                    subject=rng.choice(["Re: myelogram question", text(20), "Re: " + text(120)]),
                    message_id=rng.choice([f"<cc.{i}.{rng.getrandbits(32):08x}@caseconsultant.test>", *IDS]),
                    in_reply_to=rng.choice([None, "<q1@ridgeview-clinic.test>", "not an id", "<" + "a" * 200 + "@b.test>", *IDS]),
                    references=rng.choice([None, " ".join(f"<r{j}@x.test>" for j in range(rng.randint(0, 40))),
                                           " ".join(rng.choice(IDS) for _ in range(3))]),
                    edited_text=rng.choice([None, None, None, text(40)]),
                    text=rng.choice([text(60), "", ".", "line\n" * 30, "Hello,\n\nplain ASCII answer.\n"]),
                    html=rng.choice([text(60), "", "<p>answer</p>"]))


def test_build_makes_the_bytes_the_stdlib_makes_for_all_kinds_of_text():
    checked = 0
    for reply in replies(600):
        ours = flatten(build(reply, SETTINGS))
        theirs = flatten(stdlib_message(reply))
        assert comparable(ours) == comparable(theirs), reply
        assert b"\r\n" in ours and b"\n" not in ours.replace(b"\r\n", b"")
        checked += 1
    assert checked == 600


def test_headers_written_without_parsing_fold_as_the_stdlib_folds_them():
    rng = random.Random(11)
    atom = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
    printable = [chr(c) for c in range(33, 127)]

    def word(chars, longest):
        return "".join(rng.choice(chars) for _ in range(rng.randint(1, longest)))

    def dot_atom():
        return ".".join(word(atom, 8) for _ in range(rng.randint(1, 3)))
    # Encoded words look plain but are decoded by the parser (and written again another way).
    tricky = [("Subject", mailout._PLAIN_TEXT, value) for value in (
        "Re: =?utf-8?q?x?=", "=?utf-8?b?w6k=?=", "a =?utf-8?q?caf=C3=A9?= b", "=?utf-8?q?a_b?= =?utf-8?q?c?=")]
    plain = 0
    for i in range(6000):
        name, shape, value = tricky[i] if i < len(tricky) else rng.choice([
            ("Subject", mailout._PLAIN_TEXT, " ".join(word(printable, 12) for _ in range(rng.randint(1, 8)))),
            ("Date", mailout._PLAIN_TEXT, formatdate(rng.uniform(0, 4e9), localtime=False)),
            ("To", mailout._PLAIN_ADDRESS, f"{dot_atom()}@{dot_atom()}"),
            ("References", mailout._PLAIN_IDS, " ".join(f"<{dot_atom()}@{dot_atom()}>" for _ in range(rng.randint(1, 3))))])
        header = mailout._plain(name, value, shape)
        if isinstance(header, mailout._Plain):
            plain += 1
            for policy in (email.policy.default, email.policy.SMTP):
                assert header.fold(policy=policy) == policy.header_factory(name, value).fold(policy=policy), value
    assert plain > 4000


def test_the_multipart_content_type_written_without_parsing_folds_as_the_stdlib_at_any_width():
    built = build(next(replies(1)), SETTINGS)
    assert isinstance(built["Content-Type"], mailout._Multipart) and built.get_content_type() == "multipart/alternative"
    assert built.get_boundary() in flatten(built).decode()
    for width in [*range(20, 130), None, 0]:
        for base in (email.policy.default, email.policy.SMTP):
            policy = base.clone(max_line_length=width)
            for _ in range(5):
                value = f'multipart/alternative; boundary="{mailout._boundary([])}"'
                ours = mailout._Multipart("Content-Type", value).fold(policy=policy)
                assert ours == policy.header_factory("Content-Type", value).fold(policy=policy), (width, value)


def test_the_fixed_headers_are_ours_and_the_same_object_for_every_message():
    first, second = (build(reply, SETTINGS) for reply in replies(2))
    assert first["From"] == formataddr((one_line(SETTINGS.service.name, 80), SETTINGS.service.address))
    assert first[SETTINGS.service.loop_header] == SETTINGS.service.address
    assert first["From"] is second["From"] and first["Auto-Submitted"] is second["Auto-Submitted"]
    assert first["Message-ID"] != second["Message-ID"]


def test_a_boundary_that_occurs_in_a_part_is_not_used(monkeypatch):
    taken = 1234567890123456789
    reply = next(replies(1))
    reply.edited_text, reply.text = None, f"before\n--==============={taken:019d}==\nafter"
    draws = iter([taken, 42])
    monkeypatch.setattr(mailout.secrets, "randbits", lambda bits: next(draws))
    msg = build(reply, SETTINGS)
    assert msg.get_boundary() == f"==============={42:019d}=="
    [text_part, _] = msg.iter_parts()
    assert text_part.get_content() == reply.text + "\n"


@pytest.mark.parametrize("body", [".\n..\n.leading dot\nend", "no dot at all", "ends with a dot\n."])
def test_transmit_dot_stuffs_and_the_message_arrives_intact(smtp, body):
    reply = next(replies(1))
    reply.edited_text, reply.text = None, body
    data = flatten(build(reply, SETTINGS))
    waited = []
    client = connect_smtp(make_settings(smtp=smtp_section(smtp)).smtp)
    try:
        transmit(client, data, "ask@caseconsultant.test", reply.to_addr, lambda: None,
                 while_waiting=lambda: waited.append(True))
    finally:
        client.quit()
    [received] = smtp.wait_for(1)
    assert waited == [True]
    assert received.raw.replace(b"\r\n", b"\n") == data.replace(b"\r\n", b"\n")
    assert received.message.get_body(("plain",)).get_content().replace("\r\n", "\n") == body + "\n"


def test_a_message_refused_after_its_data_raises_and_the_wait_ran_once(smtp):
    smtp.fail_next("DATA", 554, "Message rejected")
    reply = next(replies(1))
    waited = []
    client = connect_smtp(make_settings(smtp=smtp_section(smtp)).smtp)
    try:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            transmit(client, flatten(build(reply, SETTINGS)), "ask@caseconsultant.test", reply.to_addr,
                     lambda: None, while_waiting=lambda: waited.append(True))
        assert refused.value.smtp_code == 554 and waited == [True]
        assert client.noop()[0] == 250  # the envelope was reset: the connection serves the next reply
    finally:
        client.quit()
    assert smtp.messages == []
