"""Reading a raw message: headers, addresses, message ids, dates, charsets and transfer encodings."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import email.utils

import pytest
from hypothesis import given, settings, strategies as st

from consultant.headers import PLAIN_ADDRESS
from consultant.reading import decode_header_value, parse_address, parse_msg_ids, read_message
from mailbuild import entity, mail, read, text

# --- Headers -------------------------------------------------------------------------------------

def test_a_plain_message_is_read_with_its_envelope_and_body():
    reading = read(text("Is 99213 right for a follow-up?\n"),
                   Cc="Bob <bob@Clinic.TEST>", Reply_To="desk@clinic.test",
                   In_Reply_To="<a1@consult.test>", References="<a0@consult.test> <a1@consult.test>")
    assert reading.from_name == "Jane Doe"
    assert reading.from_addr == "jane@clinic.test"
    assert reading.reply_to == "desk@clinic.test"
    assert reading.to == ["ask@consult.test"]
    assert reading.cc == ["bob@clinic.test"]
    assert reading.subject == "Coding question"
    assert reading.date == datetime(2026, 3, 3, 10, 2, tzinfo=timezone(timedelta(hours=-5)))
    assert reading.message_id == "<q1@clinic.test>"
    assert reading.in_reply_to == ["<a1@consult.test>"]
    assert reading.references == ["<a0@consult.test>", "<a1@consult.test>"]
    assert reading.body_source == "text/plain"
    assert reading.body_text == "Is 99213 right for a follow-up?\n"
    assert reading.new_text == "Is 99213 right for a follow-up?"
    assert reading.attachments == [] and reading.defects == []


@pytest.mark.parametrize("encoded, decoded", [
    ("=?utf-8?B?Q29kZSBmw7xyIEvDtmxu?=", "Code für Köln"),
    ("=?iso-8859-1?Q?caf=E9_cr=E8me?=", "café crème"),
    ("=?windows-1252?Q?=93quoted=94?=", "\u201cquoted\u201d"),
    ("=?koi8-r?B?8NLJ18XU?=", "Привет"),
    ("=?iso-2022-jp?B?GyRCRnxLXDhsGyhC?=", "日本語"),
    ("=?shift_jis?B?k/qWe4zq?=", "日本語"),
    ("=?gb2312?B?1tDOxA==?=", "中文"),
    ("=?UTF-8*en?q?language_tag?=", "language tag"),
])
def test_encoded_words_are_decoded_in_each_charset(encoded, decoded):
    assert decode_header_value(encoded) == decoded


def test_whitespace_between_encoded_words_is_dropped_and_plain_text_kept():
    value = "Re: =?utf-8?q?caf=C3=A9?= \r\n =?utf-8?q?_au_lait?= (CPT 99213)"
    assert decode_header_value(value) == "Re: café au lait (CPT 99213)"


def test_a_character_split_across_two_encoded_words_is_joined():
    # "é" is C3 A9 in utf-8; some mailers cut between the two bytes.
    assert decode_header_value("=?utf-8?b?Y2Fmw4==?= =?utf-8?b?qQ==?=") == "café"


@pytest.mark.parametrize("broken", [
    "=?utf-8?b?w6k?=",                  # base64 without padding
    "=?utf-8?b?!!!?=",                  # not base64 at all
    "=?x-no-such-charset?q?caf=E9?=",   # unknown charset
    "=?utf-8?q?caf=E9?=",               # latin-1 bytes declared utf-8
    "=?utf-8?q?unterminated",           # never closed
    "=?base64?q?abc?=",                 # a codec that is not a charset
])
def test_a_broken_encoded_word_decodes_to_something_without_raising(broken):
    assert isinstance(decode_header_value(broken), str)


def test_a_latin1_word_declared_utf8_falls_back_to_windows_1252():
    assert decode_header_value("=?utf-8?q?caf=E9?=") == "café"


@pytest.mark.parametrize("odd", [None, b"caf\xc3\xa9", 42, "a\udcff", "x" * 100_000])
def test_decode_header_value_accepts_anything(odd):
    assert isinstance(decode_header_value(odd), str)


def test_an_8bit_subject_is_read_as_utf8_and_an_8bit_name_as_windows_1252():
    reading = read(text("hi"), Subject="Caf\u00e9 question".encode("utf-8"),
                   From=b"Ren\xe9e Roe <renee@clinic.test>")
    assert reading.subject == "Café question"
    assert reading.from_name == "Renée Roe"


def test_the_subject_is_folded_and_stripped_of_control_characters():
    reading = read(text("hi"), Subject="Code\r\n\t 99213\x07 \x00question  ")
    assert reading.subject == "Code 99213 question"


@pytest.mark.parametrize("value, expected", [
    ("Jane Doe <Jane@Clinic.TEST>", ("Jane Doe", "Jane@clinic.test")),
    ('"Doe, Jane" <jane@clinic.test>', ("Doe, Jane", "jane@clinic.test")),
    ("jane@clinic.test (Jane Doe)", ("Jane Doe", "jane@clinic.test")),
    ("=?utf-8?q?Ren=C3=A9e?= <renee@clinic.test>", ("Renée", "renee@clinic.test")),
    ("<jane@clinic.test>", ("", "jane@clinic.test")),
    ("Jane Doe", ("Jane Doe", None)),
    ("Jane <not an address>", ("Jane", None)),
    ("", ("", None)),
    ('"unterminated <jane@clinic.test>', ("unterminated", "jane@clinic.test")),
])
def test_parse_address_splits_the_name_from_the_addr_spec(value, expected):
    assert parse_address(value) == expected


def test_a_message_without_a_usable_from_has_no_sender_address():
    assert read(text("hi"), From=None).from_addr is None
    assert read(text("hi"), From="undisclosed-recipients:;").from_addr is None


def test_duplicate_to_fields_are_merged_and_duplicate_subjects_use_the_first():
    raw = mail(text("hi"), Subject=None, To=None)
    raw = (b"To: a@clinic.test, B <b@clinic.test>\r\nTo: c@clinic.test, a@clinic.test\r\n"
           b"Subject: first\r\nSubject: second\r\n") + raw
    reading = read_message(raw)
    assert reading.to == ["a@clinic.test", "b@clinic.test", "c@clinic.test"]
    assert reading.subject == "first"
    assert any("subject" in d for d in reading.defects)


@pytest.mark.parametrize("value, expected", [
    ("<a@clinic.test>", ["<a@clinic.test>"]),
    ("<a@clinic.test> <b@clinic.test>\r\n <a@clinic.test>", ["<a@clinic.test>", "<b@clinic.test>"]),
    ("a@clinic.test", ["<a@clinic.test>"]),
    ("<with space@clinic.test>", []),
    ("<a\x01b@clinic.test>", []),
    ("<" + "x" * 249 + ">", []),
    ("<" + "x" * 248 + ">", ["<" + "x" * 248 + ">"]),
    ("(comment) <a@clinic.test> garbage <<b@clinic.test>>", ["<a@clinic.test>", "<b@clinic.test>"]),
    ("", []),
])
def test_parse_msg_ids_keeps_only_sane_ids(value, expected):
    assert parse_msg_ids(value) == expected


def test_an_insane_message_id_is_dropped_and_references_keep_the_last_fifty():
    refs = " ".join(f"<r{i}@clinic.test>" for i in range(80))
    reading = read(text("hi"), Message_ID="<no spaces allowed@clinic.test>", References=refs)
    assert reading.message_id is None
    assert len(reading.references) == 50
    assert reading.references[0] == "<r30@clinic.test>" and reading.references[-1] == "<r79@clinic.test>"


@pytest.mark.parametrize("value, expected", [
    ("Tue, 3 Mar 2026 10:02:00 +0100", datetime(2026, 3, 3, 10, 2, tzinfo=timezone(timedelta(hours=1)))),
    ("3 Mar 2026 10:02 -0000", datetime(2026, 3, 3, 10, 2, tzinfo=timezone.utc)),
    ("Tue, 3 Mar 2026 10:02:00 EST", datetime(2026, 3, 3, 10, 2, tzinfo=timezone(timedelta(hours=-5)))),
    ("Tue, 3 Mar 2026 10:02:00", datetime(2026, 3, 3, 10, 2)),
    ("yesterday-ish", None),
    ("Tue, 99 Mar 2026 10:02:00 +0000", None),
    ("Tue, 3 Mar 2026 10:02:00 +9999", None),
])
def test_the_date_is_timezone_aware_when_the_header_gives_a_zone(value, expected):
    assert read(text("hi"), Date=value).date == expected


# --- Charsets and transfer encodings ------------------------------------------------------------

@pytest.mark.parametrize("charset, sample", [
    ("utf-8", "Préautorisation für 99213 — ok"),
    ("UTF8", "naïve"),
    ("iso-8859-1", "Café crème"),
    ("latin1", "Café"),
    ("windows-1252", "\u201csmart quotes\u201d \u2013 \u20ac5"),
    ("cp1252", "\u2026"),
    ("iso-2022-jp", "日本語の質問です"),
    ("shift_jis", "日本語の質問です"),
    ("x-sjis", "カタカナ"),
    ("gb2312", "中文问题"),
    ("koi8-r", "Вопрос о коде"),
    ("big5", "中文問題"),
    ("euc-kr", "한국어"),
    ("utf-16", "wide text"),
])
def test_every_declared_charset_is_decoded(charset, sample):
    codec = {"x-sjis": "shift_jis"}.get(charset, charset)
    raw = entity(f"text/plain; charset={charset}", sample.encode(codec),
                 Content_Transfer_Encoding="8bit")
    reading = read(raw)
    assert reading.body_text == sample
    assert reading.defects == []


def test_an_unknown_charset_falls_back_to_utf8():
    reading = read(entity("text/plain; charset=x-martian", "café".encode("utf-8")))
    assert reading.body_text == "café"
    assert reading.defects


def test_an_unknown_charset_that_is_not_utf8_falls_back_to_windows_1252():
    reading = read(entity("text/plain; charset=x-martian", b"caf\xe9 \x93ok\x94"))
    assert reading.body_text == "café \u201cok\u201d"


def test_text_declared_ascii_but_written_in_utf8_is_read_as_utf8():
    assert read(entity("text/plain; charset=us-ascii", "café".encode())).body_text == "café"


def test_a_broken_multibyte_text_keeps_its_good_characters():
    reading = read(entity("text/plain; charset=shift_jis", "日本".encode("shift_jis") + b"\x81"))
    assert reading.body_text.startswith("日本")


@pytest.mark.parametrize("payload, expected", [
    ("café".encode("utf-8"), "café"),
    (b"caf\xe9", "café"),
])
def test_8bit_text_without_a_charset_tries_utf8_first_then_windows_1252(payload, expected):
    assert read(entity("text/plain", payload)).body_text == expected


@pytest.mark.parametrize("cte", ["base64", "quoted-printable", "7bit", "8bit", "binary", None])
def test_every_transfer_encoding_is_undone(cte):
    body = "Line one café 99213\nLine two, long enough to need a soft break " + "x" * 80 + "\n"
    if cte == "7bit":
        body = body.replace("é", "e")
    reading = read(text(body, cte=cte))
    assert reading.body_text == body
    assert reading.defects == []


def test_quoted_printable_in_windows_1252_is_decoded_through_both_layers():
    raw = entity("text/plain; charset=windows-1252", b"=93Modifier 25=94 =\r\nworks",
                 Content_Transfer_Encoding="quoted-printable")
    assert read(raw).body_text == "\u201cModifier 25\u201d works"


def test_base64_with_bad_padding_decodes_what_it_can():
    payload = base64.b64encode("Is 99213 right?".encode()).rstrip(b"=")[:-1] + b"\r\n!!"
    reading = read(entity("text/plain; charset=utf-8", payload, Content_Transfer_Encoding="base64"))
    assert reading.body_text.startswith("Is 99213 right")
    assert any("base64" in d for d in reading.defects)


def test_an_unknown_transfer_encoding_is_read_as_is_and_noted():
    reading = read(entity("text/plain", b"plain words", Content_Transfer_Encoding="x-rot13"))
    assert reading.body_text == "plain words"
    assert any("transfer encoding" in d for d in reading.defects)


def test_newlines_are_normalised_and_control_characters_removed():
    raw = entity("text/plain; charset=utf-8", b"\xef\xbb\xbfone\r\ntwo\rthree\x00\x1b[31m\tfour\x7f\n")
    assert read(raw).body_text == "one\ntwo\nthree[31m\tfour\n"


def test_addresses_parsed_again_come_back_the_same_and_unshared():
    from consultant.headers import CACHED_ADDRESS, parse_address_list

    value = "Bob <bob@Clinic.TEST>, ann@clinic.test, bob@clinic.test"
    first = parse_address_list(value)
    first.append("mallory@evil.test")  # a caller changing its list changes no one else's
    assert parse_address_list(value) == ["bob@clinic.test", "ann@clinic.test"]
    assert parse_address("Jane Doe <Jane@Clinic.TEST>") == parse_address("Jane Doe <Jane@Clinic.TEST>") \
        == ("Jane Doe", "Jane@clinic.test")
    long = "x" * CACHED_ADDRESS + " <jane@clinic.test>"  # over the cached length: parsed each time
    assert parse_address(long) == ("x" * 200, "jane@clinic.test")
    assert parse_address_list(long + ", ann@clinic.test") == ["jane@clinic.test", "ann@clinic.test"]


def _part(plain: str, odd: str, size: int):
    """Mostly what an address part is spelled with, sometimes with what the parser reads its own way."""
    return st.one_of(st.text(plain, min_size=1, max_size=size), st.text(plain + odd, min_size=1, max_size=size))


_PLAIN = st.builds(lambda name, local, domain, angled: (f"{' '.join(name)} <{local}@{domain}>".lstrip()
                                                         if angled else f"{local}@{domain}"),
                   st.lists(_part("AZaz09'-", ".,;:()\"\\", 6), max_size=3), _part("Az09_%+-.", ",;:()", 8),
                   _part("Az09-.", ",;()", 8), st.booleans())


@settings(max_examples=1000, deadline=None, database=None)
@given(st.one_of(_PLAIN, st.text("Az0 '-.@<>,;:\"()[]\\_%+", max_size=30)))
def test_the_usual_address_forms_are_split_as_the_standard_library_splits_them(value):
    plain = PLAIN_ADDRESS.fullmatch(value)
    if plain is not None:  # the forms parse_address splits without the standard library's parser
        assert [(plain.group(1) or "", plain.group(2) or plain.group(3))] == email.utils.getaddresses([value])


def test_the_usual_address_forms_are_recognised():
    for value in ("Coder 4 <coder0@clinic4.test>", "Mary-Ann O'Neil <m.o+x@mail.clinic.test>", "a_b@c-d.test"):
        assert PLAIN_ADDRESS.fullmatch(value)
    for value in ('"Doe, Jane" <j@x.test>', "J. Doe <j@x.test>", "j@x.test (Jane)", "a..b@x.test", "<a@x.test> b"):
        assert PLAIN_ADDRESS.fullmatch(value) is None
