"""Reading a raw message: body choice, HTML, attachments, malformed MIME and limits."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from consultant.reading import Attachment, Reading, UnreadableMessage, read_message
from mailbuild import attachment, entity, html, mail, multipart, read, text

# --- Body choice and HTML ------------------------------------------------------------------------

def test_multipart_alternative_prefers_the_plain_text_part():
    reading = read(multipart("alternative", html("<p>From HTML</p>"), text("From plain")))
    assert reading.body_source == "text/plain"
    assert reading.body_text == "From plain"


def test_an_empty_plain_alternative_gives_way_to_the_html_part():
    reading = read(multipart("alternative", text("  \r\n"), html("<p>Use 99214</p>")))
    assert reading.body_source == "text/html"
    assert reading.body_text == "Use 99214"


GMAIL_HTML = """<div dir="ltr">Is 99213 right for <a href="https://payer.test/x">this visit</a>?
<img src="cid:logo" alt="logo"><div><br></div><div>""" + "word " * 40 + """</div></div><br>
<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, Mar 2, 2026 at 9:00 AM Bob Roe
&lt;<a href="mailto:bob@consult.test">bob@consult.test</a>&gt; wrote:<br></div>
<blockquote class="gmail_quote" style="margin:0 0 0 .8ex">Please send the note. 99214?<br></blockquote>
</div>"""


def test_gmail_html_is_converted_with_its_quote_recognised():
    reading = read(html(GMAIL_HTML))
    assert reading.body_source == "text/html"
    assert reading.new_text.startswith("Is 99213 right for this visit?")
    assert "https://" not in reading.body_text and "logo" not in reading.body_text
    assert ("word " * 40).strip() in reading.new_text.splitlines()  # not wrapped at 78 columns
    assert "99214" in reading.quoted_text and "99214" not in reading.new_text
    assert "wrote:" in reading.quoted_text


OUTLOOK_HTML = """<html><head><style>p {margin:0}</style></head><body>
<div><p>Should this be 99215?</p></div>
<div id="appendonsend"></div><hr style="display:inline-block;width:98%" tabindex="-1">
<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri"><b>From:</b> Bob Roe &lt;bob@consult.test&gt;<br>
<b>Sent:</b> Monday, March 2, 2026 9:00 AM<br><b>To:</b> Jane Doe<br><b>Subject:</b> RE: visit</font>
<div>&nbsp;</div></div><div><p>Earlier answer: 99213.</p></div></body></html>"""


def test_outlook_html_puts_everything_after_the_reply_header_in_quoted_history():
    reading = read(html(OUTLOOK_HTML, charset="windows-1252"))
    assert reading.new_text == "Should this be 99215?"
    assert "From: Bob Roe" in reading.quoted_text and "99213" in reading.quoted_text
    assert "margin" not in reading.body_text and "**" not in reading.body_text


def test_script_and_style_content_never_reaches_the_text():
    source = ("<style>.x{color:red}</style></style><script>alert('99213')</script>"
              "<p>Visible 99212</p></script></head><p>still visible</p>")
    reading = read(html(source))
    assert "alert" not in reading.body_text and "color" not in reading.body_text
    assert "Visible 99212" in reading.body_text and "still visible" in reading.body_text


def test_apple_mail_blockquote_and_html_signature_are_split():
    source = ('<div>Thanks, and 99213-25?</div><div>-- <br>Jane Doe, CPC</div><div><br>'
              '<blockquote type="cite"><div>On Mar 2, 2026, at 9:00 AM, Bob wrote:</div>'
              '<div>Use modifier 59.</div></blockquote></div>')
    reading = read(html(source))
    assert reading.new_text == "Thanks, and 99213-25?"
    assert reading.signature == "Jane Doe, CPC"
    assert "modifier 59" in reading.quoted_text


def test_a_less_than_sign_in_html_text_survives():
    assert read(html("<p>If age < 18 use 99382, else 99385<br>next</p>")).body_text == (
        "If age < 18 use 99382, else 99385\nnext")


def test_a_flood_of_unclosed_tags_does_not_hide_the_text_after_it():
    # html.parser rescans an unclosed tag to the end at every "<"; unguarded this takes minutes
    # (the speed itself is measured in bench/, the pytest timeout catches a regression).
    reading = read(html("<a" * 150_000 + "<p>Is 99213 right?</p>"))
    assert "Is 99213 right?" in reading.body_text


def test_html_table_cells_stay_apart():
    rows = "<tr><td>99213</td><td>1</td></tr><tr><td>J1100</td><td>2</td></tr>"
    reading = read(html(f"<table>{rows}</table>"))
    assert reading.body_text.splitlines() == ["99213 1", "J1100 2"]


def test_html_without_a_mime_charset_uses_its_meta_charset():
    source = '<html><head><meta charset="windows-1252"></head><body>caf\xe9</body></html>'
    reading = read(entity("text/html", source.encode("cp1252")))
    assert reading.body_text == "café"


def test_multipart_mixed_lists_attachments_with_decoded_sizes():
    raw = multipart("mixed",
                    text("See the attached note."),
                    attachment("application/pdf", b"%PDF-" + b"\x00" * 995),
                    attachment("image/png; name=x.png", b"\x89PNG" + b"1" * 17, filename="x-ray.png"))
    reading = read(raw)
    assert reading.body_text == "See the attached note."
    assert reading.attachments == [Attachment("scan.pdf", "application/pdf", 1000),
                                   Attachment("x-ray.png", "image/png", 21)]


def test_a_quoted_printable_attachment_is_measured_after_decoding():
    raw = multipart("mixed", text("hi"),
                    entity("text/csv", b"a=3Db\r\n", Content_Transfer_Encoding="quoted-printable",
                           Content_Disposition="attachment; filename=codes.csv"))
    assert read(raw).attachments == [Attachment("codes.csv", "text/csv", 5)]


def test_a_text_part_with_a_filename_is_an_attachment_not_the_body():
    raw = multipart("mixed", text("notes", Content_Disposition='inline; filename="notes.txt"'),
                    html("<p>the body</p>"))
    reading = read(raw)
    assert reading.body_text == "the body"
    assert reading.attachments == [Attachment("notes.txt", "text/plain", 5)]


def test_an_attachment_filename_is_decoded_and_made_safe_to_show():
    rfc2231 = entity("application/pdf", b"",
                     Content_Disposition="attachment; filename*=utf-8''R%C3%A9sum%C3%A9.pdf")
    rfc2047 = entity('application/pdf; name="=?utf-8?q?=C3=A9t=C3=A9.pdf?="', b"")
    hostile = entity("application/octet-stream", b"",
                     Content_Disposition='attachment; filename="inv\x01oice\u202egpj.exe'
                     + "a" * 300 + '"')
    reading = read(multipart("mixed", text("hi"), rfc2231, rfc2047, hostile))
    names = [a.filename for a in reading.attachments]
    assert names[:2] == ["Résumé.pdf", "été.pdf"]
    assert names[2].startswith("invoicegpj.exe") and len(names[2]) == 200


def test_an_undecodable_base64_attachment_reports_its_encoded_size():
    broken = entity("application/pdf", b"!!!!\r\n!", Content_Transfer_Encoding="base64",
                    Content_Disposition="attachment")
    raw = multipart("mixed", text("hi"), broken)
    assert read(raw).attachments == [Attachment(None, "application/pdf", 7)]


def test_nested_multiparts_are_searched_for_the_body_and_attachments():
    inner = multipart("alternative", text("Nested plain"), html("<p>Nested html</p>"), boundary="b-alt")
    logo = entity("image/png", b"png", Content_ID="<logo>")
    related = multipart("related", inner, logo, boundary="b-rel")
    raw = multipart("mixed", related, attachment("application/pdf", b"pdf"))
    reading = read(raw)
    assert reading.body_text == "Nested plain"
    assert [a.content_type for a in reading.attachments] == ["image/png", "application/pdf"]


def test_a_forwarded_message_is_an_attachment_and_its_text_is_not_read():
    inner = multipart("mixed", text("Forwarded text 99999"), attachment("application/pdf", b"x"),
                      boundary="b-fwd")
    forwarded = mail(inner, Subject="Fwd inner")
    raw = multipart("mixed", text("Please see the forwarded mail."),
                    entity("message/rfc822", forwarded, Content_Disposition="attachment"))
    reading = read(raw)
    assert reading.body_text == "Please see the forwarded mail."
    assert len(reading.attachments) == 1
    assert reading.attachments[0].content_type == "message/rfc822"
    assert len(forwarded) * 0.9 < reading.attachments[0].size <= len(forwarded)


@pytest.mark.parametrize("ctype", ["application/x-unknown-thing", "foo/bar", "text/calendar"])
def test_a_part_with_an_unknown_content_type_is_an_attachment(ctype):
    reading = read(multipart("mixed", text("body"), entity(ctype, b"12345")))
    assert reading.body_text == "body"
    assert reading.attachments == [Attachment(None, ctype, 5)]


def test_an_unreadable_content_type_is_an_attachment_and_noted():
    reading = read(multipart("mixed", text("body"), entity("garbage", b"12345")))
    assert reading.attachments == [Attachment(None, "application/octet-stream", 5)]
    assert any("Content-Type" in d for d in reading.defects)


def test_a_message_with_only_attachments_has_no_body():
    reading = read(multipart("mixed", attachment("application/pdf", b"pdf")))
    assert (reading.body_source, reading.body_text, reading.new_text) == ("none", "", "")


def test_a_long_body_is_cut_to_max_body_chars_and_noted():
    reading = read_message(mail(text("a" * 5000)), max_body_chars=1000)
    assert len(reading.body_text) == 1000
    assert any("cut" in d for d in reading.defects)


# --- Malformed MIME ------------------------------------------------------------------------------

def test_a_multipart_without_a_boundary_parameter_is_read_by_guessing_it():
    body = (b"--zz\r\n" + text("Guessed body") + b"\r\n--zz\r\n"
            + attachment("application/pdf", b"x") + b"\r\n--zz--\r\n")
    reading = read(entity("multipart/mixed", body))
    assert reading.body_text == "Guessed body"
    assert [a.content_type for a in reading.attachments] == ["application/pdf"]
    assert any("boundary" in d for d in reading.defects)


def test_a_multipart_without_any_boundary_is_read_as_text():
    reading = read(entity("multipart/mixed", b"Just words, no parts."))
    assert reading.body_text == "Just words, no parts."
    assert reading.defects


def test_a_missing_end_boundary_keeps_the_parts():
    raw = multipart("mixed", text("Body before the cut"), attachment("application/pdf", b"x"))
    reading = read(raw[: raw.rindex(b"--b-outer--")])
    assert reading.body_text == "Body before the cut"
    assert len(reading.attachments) == 1
    assert reading.defects


def test_headers_with_no_body_give_an_empty_reading():
    reading = read_message(b"From: jane@clinic.test\r\nSubject: only headers")
    assert reading.subject == "only headers"
    assert reading.body_source == "none"


def test_garbage_before_the_first_header_is_skipped():
    reading = read_message(b"\r\n\r\n>>> exported by a tool\r\n" + mail(text("Real body")))
    assert reading.from_addr == "jane@clinic.test"
    assert reading.body_text == "Real body"
    assert any("before the first header" in d for d in reading.defects)


def test_a_byte_order_mark_before_the_headers_is_ignored():
    reading = read_message(b"\xef\xbb\xbf" + mail(text("body")))
    assert reading.from_addr == "jane@clinic.test" and reading.subject == "Coding question"


def test_bare_lf_line_endings_are_read_like_crlf():
    raw = mail(multipart("alternative", text("Plain\r\nbody"), html("<p>x</p>"))).replace(b"\r\n", b"\n")
    reading = read_message(raw)
    assert reading.body_text == "Plain\nbody"
    assert reading.subject == "Coding question"


def test_a_mbox_from_line_is_not_mistaken_for_garbage():
    reading = read_message(b"From jane@clinic.test Tue Mar  3 10:02:00 2026\n" + mail(text("body")))
    assert reading.from_addr == "jane@clinic.test" and reading.defects == []


# --- Limits and unreadable input -----------------------------------------------------------------

def nested(depth: int) -> bytes:
    raw = text("deep")
    for level in range(depth):
        raw = multipart("mixed", raw, boundary=f"b{level}")
    return raw


def test_too_many_parts_is_unreadable_with_a_reason():
    raw = multipart("mixed", *[attachment("application/pdf", b"x") for _ in range(10)])
    with pytest.raises(UnreadableMessage) as caught:
        read_message(mail(raw), max_parts=5)
    assert "more than 5 MIME parts" in caught.value.reason


def test_parts_inside_a_forwarded_message_count_towards_the_limit():
    forwarded = mail(multipart("mixed", *[text("x") for _ in range(6)], boundary="b-fwd"))
    raw = multipart("mixed", text("hi"), entity("message/rfc822", forwarded))
    with pytest.raises(UnreadableMessage):
        read_message(mail(raw), max_parts=6)


def test_nesting_within_the_limit_is_read():
    assert read_message(mail(nested(20))).body_text == "deep"


def test_nesting_deeper_than_the_limit_is_unreadable_with_a_reason():
    with pytest.raises(UnreadableMessage) as caught:
        read_message(mail(nested(21)))
    assert "20 levels deep" in caught.value.reason


def test_nesting_too_deep_for_the_parser_is_unreadable():
    with pytest.raises(UnreadableMessage) as caught:
        read_message(mail(nested(1500)), max_depth=5000, max_parts=5000)
    assert "deep" in caught.value.reason


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n  "])
def test_an_empty_message_is_unreadable(raw):
    with pytest.raises(UnreadableMessage) as caught:
        read_message(raw)
    assert caught.value.reason == "The message is empty."


def test_text_with_no_header_fields_is_unreadable():
    with pytest.raises(UnreadableMessage) as caught:
        read_message(b"just some words\r\nand more words\r\n")
    assert "not an email" in caught.value.reason


MIME_FRAGMENTS = [
    b"From: a@clinic.test\r\n", b"Subject: =?utf-8?b?w6k?=\r\n", b"\r\n", b"\n",
    b"--b\r\n", b"--b--\r\n",
    b"Content-Type: multipart/mixed; boundary=b\r\n", b"Content-Type: multipart/alternative\r\n",
    b"Content-Type: text/html; charset=x-unknown\r\n", b"Content-Type: text/plain; charset=utf-16\r\n",
    b"Content-Type: message/rfc822\r\n", b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Disposition: attachment; filename*=x''%ff\r\n",
    b"<div class=gmail_quote>", b"</div>", b"</blockquote>", b"</style>", b"<table><td>", b"&#99999999;",
    b"> quoted\n", b"On Mon 3 Mar wrote:\n", b"-- \n", b"=\r\n", b"\xff\xfe\x00", b"\x1b$B",
]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=2000),
    st.lists(st.one_of(st.sampled_from(MIME_FRAGMENTS), st.binary(max_size=12)),
             max_size=60).map(b"".join),
))
def test_any_bytes_give_a_reading_or_unreadable_message(raw):
    try:
        reading = read_message(raw)
    except UnreadableMessage as unreadable:
        assert unreadable.reason
    else:
        assert isinstance(reading, Reading)
        assert reading.body_source in ("text/plain", "text/html", "none")
        assert "\r" not in reading.body_text and "\x00" not in reading.body_text
