"""Hypothesis strategies for hostile and broken mail, and a tally of the inputs the tests try.

Every message here is made up. The strategies build raw bytes: arbitrary bytes, structured but
broken MIME, huge and folded headers, deep nesting, bad charsets, encoded-word abuse and hostile
HTML. Sizes stay small enough for hundreds of examples a second; the bombs live in
test_mail_bombs.py.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from collections import Counter

import pytest
from hypothesis import strategies as st

# Inputs tried per test, printed once at the end of each module that uses the `tally` fixture.
TRIED: Counter[str] = Counter()
# How the inputs ended ("stages: read", "pipeline: quarantined at parse"...), printed with them.
ENDED: Counter[str] = Counter()
# Hypothesis repeats itself (the empty message, shrunk forms); these are the different inputs.
DISTINCT: set[bytes] = set()


def tried(test: str, raw: bytes) -> None:
    """Count one input fed to the stages by `test`."""
    TRIED[test] += 1
    DISTINCT.add(hashlib.blake2b(raw, digest_size=16).digest())


@pytest.fixture(scope="module")
def tally(request):
    """Prints how many hostile inputs each test fed through the stages (with or without -s)."""
    before, ended_before, distinct_before = dict(TRIED), dict(ENDED), len(DISTINCT)
    yield TRIED
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    counts = {name: n - before.get(name, 0) for name, n in TRIED.items() if n != before.get(name, 0)}
    lines = [f"hostile inputs tried in {request.module.__name__}: {sum(counts.values())} "
             f"({len(DISTINCT) - distinct_before} different)"]
    lines += [f"  {name}: {n}" for name, n in sorted(counts.items())]
    lines += [f"    {name}: {n - ended_before.get(name, 0)}" for name, n in sorted(ENDED.items())
              if n != ended_before.get(name, 0)]
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown without -s
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)


# --- Pieces -----------------------------------------------------------------------------------

EOLS = [b"\r\n", b"\n", b"\r", b"\n\r", b"\r\r\n"]
CHARSETS = [
    "utf-8", "us-ascii", "iso-8859-1", "windows-1252", "utf-16", "utf-16-le", "utf-32", "utf-7",
    "unicode-1-1-utf-7", "iso-2022-jp", "shift_jis", "gb2312", "big5", "koi8-r", "x-bogus", "",
    "base64", "rot13", "hex", "zlib", "uu", "idna", "punycode", "unicode-escape", "undefined",
    "utf-8\x00", "utf-8'en'", "\"utf-8", "../../etc/passwd", "x" * 200, "utf_8_sig", "cp1252",
]
CONTENT_TYPES = [
    "text/plain", "text/html", "text/enriched", "application/octet-stream", "application/pdf",
    "image/png", "message/rfc822", "message/delivery-status", "message/partial", "multipart/mixed",
    "multipart/alternative", "multipart/related", "multipart/report", "multipart/digest",
    "multipart/signed", "text", "/", "text/", "multipart", "TEXT/PLAIN", "text/plain/extra",
    "text/plain\x00", "tëxt/plain", "", ";;;",
]
ENCODINGS = ["base64", "quoted-printable", "7bit", "8bit", "binary", "x-uuencode", "BASE64 ",
             "\"base64\"", "gzip", ""]
BOUNDARIES = ["b", "b1", "b-", "bb", "b--", "=_b", "-", "--", "b b", "\"", "'b'", "x" * 90, "é", ""]
HEADER_NAMES = [
    "From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
    "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "MIME-Version",
    "Auto-Submitted", "Precedence", "Return-Path", "List-Id", "X-Mailer", "Received",
    "Authentication-Results", "X-Loop", "Sender", "Subject ", " From", "Fr\x00m", "X-Ünïcode",
]
HTML_BITS = [
    "<div class=gmail_quote>", "<div class=\"yahoo_quoted\">", "<div id=appendonsend>", "</div>",
    "<blockquote>", "</blockquote>", "<style>", "</style>", "<script>", "</script>", "<head>",
    "</head>", "<table><tr><td>", "</td><td>", "</table>", "<pre>", "</pre>", "<ol><li>", "<ul>",
    "<hr>", "<br>", "<p>", "<a href=\"javascript:alert(1)\">", "<img src=x onerror=alert(1)>",
    "<!--", "-->", "<![CDATA[", "]]>", "<", "<a", "<<<>>>", "&#99999999;", "&#x110000;", "&#0;",
    "&bogus;", "&nbsp;", "&lt;", "<meta charset=x-bogus>", "<meta http-equiv=content-type>",
    "<svg><math><mi>", "<?xml ?>", "<!DOCTYPE html>", "<base href=//evil.test>", "99213",
    "J1100 x2", "M54.16", " wrote:", "On Mon 3 Mar 2026 jane@clinic.test wrote:", "\u202e",
]
BODY_BITS = [
    "99213-25", "Can I bill 62303 with 72128?", "> quoted 99214\n", "On Mon, 3 Mar 2026 Bob wrote:\n",
    "-- \n", "--\n", "Sent from my phone\n", "-----Original Message-----\n", "From: x\nSent: y\n",
    "\x00", "\ufeff", "\u202e", "=\r\n", "=ZZ", "=3", "\x1b$B", "\udcff", "\r", "\n", " ", "\t",
]


def _encode_word_payload(data: bytes, kind: str) -> str:
    if kind in "bB":
        return base64.b64encode(data).decode()
    return binascii.b2a_qp(data, header=True).decode().replace("\n", "")


@st.composite
def encoded_word(draw) -> str:
    """One RFC 2047 word, often wrong: bad charset, bad base64 or QP, unclosed, nested."""
    charset = draw(st.sampled_from(CHARSETS)).replace("?", "")
    kind = draw(st.sampled_from("bBqQxX"))
    shape = draw(st.sampled_from(["good", "bad", "nested", "garbled", "empty"]))
    if shape == "good":
        payload = _encode_word_payload(draw(st.binary(max_size=24)), kind)
    elif shape == "bad":
        payload = draw(st.sampled_from(["!!!!", "=", "a", "abc", "====", "=ZZ=3", "_" * 30,
                                        "w6", "////+++", "=?", "?"]))
    elif shape == "nested":
        inner = f"=?utf-8?b?{base64.b64encode(b'=?utf-8?q?99213?=').decode()}?="
        payload = _encode_word_payload(inner.encode(), kind)
    elif shape == "garbled":
        return draw(st.sampled_from([f"=?{charset}?{kind}?", f"=?{charset}?", "=?=", "?=",
                                     "=?" * 5, f"=?{charset}*en?{kind}?YQ==?="]))
    else:
        payload = ""
    return f"=?{charset}?{kind}?{payload}?="


@st.composite
def encoded_word_flood(draw) -> str:
    """Hundreds or thousands of encoded words (one drawn, repeated), separated by folding."""
    words = draw(st.lists(encoded_word(), min_size=1, max_size=3))
    count = draw(st.integers(1, 3000))
    sep = draw(st.sampled_from([" ", "", "\r\n ", "\t", " x "]))
    return sep.join(words[i % len(words)] for i in range(count))


header_text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(BODY_BITS + HTML_BITS),
    encoded_word(),
    st.lists(encoded_word(), max_size=6).map(" ".join),
    st.sampled_from(["Jane Doe <jane@clinic.test>", "<jane@clinic.test>", "\"unbalanced <a@b.test>",
                     "jane@clinic.test (comment", "undisclosed-recipients:;", "a@b@c", "<>", "@",
                     "=?utf-8?q?Jane?= <jane@clinic.test>", "<q1@clinic.test> <q1@clinic.test>"]),
)


def _latin(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@st.composite
def header_field(draw) -> bytes:
    name = draw(st.one_of(st.sampled_from(HEADER_NAMES), st.text(min_size=1, max_size=12)))
    value = _latin(draw(header_text))
    if draw(st.booleans()):
        value += draw(st.binary(max_size=8))  # 8-bit and NULs in headers
    eol = draw(st.sampled_from(EOLS))
    folds = draw(st.integers(0, 3))
    return _latin(name) + b": " + value + (eol + b" " + value) * folds + eol


@st.composite
def huge_header(draw) -> bytes:
    """A long line, many fields, or one field folded on and on (tens of KB at most here)."""
    eol = draw(st.sampled_from(EOLS[:3]))
    shape = draw(st.sampled_from(["long", "many", "folded", "words"]))
    n = draw(st.integers(100, 20_000))
    if shape == "long":
        return b"X-Long: " + b"a" * n * 4 + eol
    if shape == "many":
        return (b"X-A: b" + eol) * (n // 4)
    if shape == "folded":
        return b"Subject: fold" + (eol + b" 99213") * (n // 4) + eol
    return b"Subject: " + _latin(draw(encoded_word_flood())) + eol


@st.composite
def body_text(draw, html: bool = False) -> bytes:
    bits = HTML_BITS if html else BODY_BITS
    pieces = draw(st.lists(st.one_of(st.sampled_from(bits), st.text(max_size=20)), max_size=40))
    text = "".join(pieces)
    charset = draw(st.sampled_from(CHARSETS))
    try:  # mislabelled bytes: encoded in one charset, declared (below) as another
        return text.encode(draw(st.sampled_from(["utf-8", "utf-16", "cp1252", "utf-7"])), "replace")
    except (UnicodeError, LookupError):
        return _latin(text) if charset else b""


def _content_type(draw, ctype: str, boundary: str | None) -> bytes:
    params = []
    if boundary is not None:
        params.append(draw(st.sampled_from([f'boundary="{boundary}"', f"boundary={boundary}",
                                            f'boundary="{boundary}"; boundary="x"', "boundary=",
                                            f"BOUNDARY = {boundary}", f"boundary*=''{boundary}"])))
    if draw(st.booleans()):
        params.append(f'charset="{draw(st.sampled_from(CHARSETS))}"')
    if draw(st.booleans()):
        params.append(draw(st.sampled_from(["name*=x''%ff%fe", 'name="a\u202egpj.exe"', "=", ";",
                                            "name*0=a; name*2=b", "filename=../../x", "a=\"b"])))
    return b"Content-Type: " + _latin("; ".join([ctype, *params])) + b"\r\n"


@st.composite
def mime_entity(draw, depth: int = 0) -> bytes:
    """One entity of broken MIME: a leaf with odd encodings, or a multipart with bad boundaries."""
    multipart = depth < 4 and draw(st.integers(0, 2)) == 0
    head = b"".join(draw(st.lists(header_field(), max_size=2)))
    if not multipart:
        ctype = draw(st.sampled_from(CONTENT_TYPES))
        if draw(st.integers(0, 4)):
            head += _content_type(draw, ctype, None)
        body = draw(body_text(html="html" in ctype))
        cte = draw(st.sampled_from(ENCODINGS))
        if cte and draw(st.booleans()):
            head += b"Content-Transfer-Encoding: " + cte.encode() + b"\r\n"
            if cte.strip().strip('"').lower() == "base64" and draw(st.booleans()):
                body = base64.encodebytes(body)
        if draw(st.integers(0, 5)) == 0:
            head += b"Content-Disposition: attachment; filename*=utf-8''%E2%80%AEfdp.exe\r\n"
        return head + draw(st.sampled_from([b"\r\n", b"\n", b""])) + body
    boundary = draw(st.sampled_from(BOUNDARIES))
    ctype = draw(st.sampled_from(["multipart/mixed", "multipart/alternative", "multipart/related",
                                  "message/rfc822", "multipart/report", "multipart"]))
    head += _content_type(draw, ctype, boundary if draw(st.integers(0, 4)) else None)
    children = draw(st.lists(mime_entity(depth + 1), max_size=4))
    # The boundary actually used may differ from the declared one: a prefix, a longer one...
    used = draw(st.sampled_from([boundary, boundary + "x", boundary[:-1], boundary.upper(), "b"]))
    eol = draw(st.sampled_from(EOLS))
    sep = b"--" + _latin(used)
    body = draw(st.sampled_from([b"", b"preamble" + eol]))
    for child in children:
        body += draw(st.sampled_from([sep + eol, sep + b"  " + eol, sep + b"-" + eol, b""])) + child + eol
    body += draw(st.sampled_from([sep + b"--" + eol, b"", sep + eol, sep + b"--", b"--" + eol]))
    if ctype == "message/rfc822":
        body = children[0] if children else b""
    return head + eol + body


@st.composite
def deep_nesting(draw) -> bytes:
    """Multiparts or message/rfc822 parts nested 1-60 levels deep, around a question."""
    depth = draw(st.integers(1, 60))
    kinds = draw(st.lists(st.sampled_from(["multi", "rfc822"]), min_size=depth, max_size=depth))
    leaf = b"Content-Type: text/plain\r\n\r\nIs 99213 right?\r\n"
    for i, kind in enumerate(reversed(kinds)):
        if kind == "rfc822":
            leaf = b"Content-Type: message/rfc822\r\n\r\nSubject: level\r\n" + leaf
        else:
            b = b"n%d" % i
            leaf = (b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n--' + b + b"\r\n"
                    + leaf + b"\r\n--" + b + b"--\r\n")
    return leaf


# Mail the screen ignores, with hostile bodies behind it.
MACHINE_HEADERS = [b"Auto-Submitted: auto-replied\r\n", b"Precedence: bulk\r\n",
                   b"List-Id: <coders.lists.test>\r\n", b"Return-Path: <>\r\n",
                   b"Auto-Submitted: =?utf-8?q?auto?=\r\n", b"X-Autoreply: yes\r\n"]
ENVELOPE = b"From: Jane Doe <jane@clinic.test>\r\nTo: ask@consult.test\r\nSubject: question\r\n"

messages = st.one_of(
    st.binary(max_size=3000),
    st.lists(st.one_of(st.sampled_from([_latin(b) for b in BODY_BITS + HTML_BITS]),
                       header_field(), st.binary(max_size=12)), max_size=40).map(b"".join),
    st.tuples(st.lists(header_field(), max_size=6), mime_entity()).map(
        lambda t: b"".join(t[0]) + t[1]),
    st.tuples(st.lists(header_field(), max_size=4), mime_entity()).map(
        lambda t: ENVELOPE + b"".join(t[0]) + t[1]),
    st.tuples(huge_header(), mime_entity()).map(lambda t: ENVELOPE + t[0] + t[1]),
    deep_nesting().map(lambda body: ENVELOPE + body),
    st.tuples(st.sampled_from(MACHINE_HEADERS), mime_entity()).map(lambda t: ENVELOPE + t[0] + t[1]),
    st.tuples(encoded_word_flood(), encoded_word_flood()).map(
        lambda t: b"From: " + _latin(t[0][:5000]) + b" <jane@clinic.test>\r\nSubject: "
        + _latin(t[1]) + b"\r\n\r\nIs 99213 right?\r\n"),
    body_text(html=True).map(lambda body: ENVELOPE + b"Content-Type: text/html\r\n\r\n" + body),
)
