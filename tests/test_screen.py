"""Screen rules: every rule ignores what it should, with a reason, and lets questions through."""
import pytest

from consultant.screen import headers_of, screen
from support import make_settings

QUESTION = {
    "From": "Jane Doe <jane.doe@ridgeview-clinic.test>",
    "To": "ask@caseconsultant.test",
    "Subject": "62303 with 72128?",
    "Message-ID": "<q1@ridgeview-clinic.test>",
}


def message(extra=None, drop=(), body="Can I bill 62303 with 72128?\n") -> bytes:
    headers = {k: v for k, v in QUESTION.items() if k not in drop}
    headers.update(extra or {})
    return ("".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n" + body).encode()


def verdict(raw: bytes, recent: int = 0, **sections):
    return screen(headers_of(raw), make_settings(**sections), lambda addr: recent)


def test_a_plain_question_passes():
    assert verdict(message()).action == "pass"


@pytest.mark.parametrize("headers,rule,reason", [
    ({"Auto-Submitted": "auto-replied"}, "auto_submitted", "auto-reply"),
    ({"Auto-Submitted": "auto-generated; type=vacation"}, "auto_submitted", "auto-reply"),
    ({"X-Autoreply": "yes"}, "autoreply_headers", "auto-reply"),
    ({"X-Autorespond": "Out of office"}, "autoreply_headers", "auto-reply"),
    ({"X-Auto-Response-Suppress": "All"}, "autoreply_headers", "auto-reply"),
    ({"Subject": "Automatic reply: 62303 with 72128?"}, "autoreply_subject", "auto-reply"),
    ({"Subject": "Out of Office: back Monday"}, "autoreply_subject", "auto-reply"),
    ({"Precedence": "bulk"}, "precedence", "Precedence: bulk"),
    ({"Precedence": "list"}, "precedence", "Precedence: list"),
    ({"Precedence": "junk"}, "precedence", "Precedence: junk"),
    ({"List-Id": "<coders.lists.test>"}, "mailing_list", "List-Id"),
    ({"List-Unsubscribe": "<mailto:leave@lists.test>"}, "mailing_list", "mailing list"),
    ({"Content-Type": 'multipart/report; report-type=delivery-status; boundary="b"'}, "bounce", "delivery status"),
    ({"Return-Path": "<>"}, "bounce", "null Return-Path"),
    ({"X-Failed-Recipients": "someone@x.test"}, "bounce", "bounce"),
    ({"From": "Mail Delivery System <MAILER-DAEMON@mx.clinic.test>"}, "bounce", "mailer daemon"),
    ({"From": "CaseConsultant <ask@caseconsultant.test>"}, "own_address", "own address"),
    ({"X-CaseConsultant-Loop": "ask@caseconsultant.test"}, "loop_header", "loop header"),
])
def test_each_rule_ignores_its_kind_of_mail_with_a_reason(headers, rule, reason):
    result = verdict(message(headers))
    assert (result.action, result.rule) == ("ignore", rule)
    assert reason.lower() in result.reason.lower()


def test_auto_submitted_no_is_a_person_writing():
    assert verdict(message({"Auto-Submitted": "no"})).action == "pass"


def test_precedence_first_class_is_not_bulk():
    assert verdict(message({"Precedence": "first-class"})).action == "pass"


def test_our_other_addresses_count_as_our_own():
    raw = message({"From": "desk@caseconsultant.test"})
    assert verdict(raw).action == "pass"
    result = verdict(raw, service={"own_addresses": ["desk@caseconsultant.test"]})
    assert result.rule == "own_address"


def test_a_renamed_loop_header_is_honoured():
    raw = message({"X-Our-Loop": "1"})
    assert verdict(raw, service={"loop_header": "X-Our-Loop"}).rule == "loop_header"


def test_the_allow_list_lets_listed_addresses_and_domains_through():
    raw = message()
    assert verdict(raw, screen={"allow_senders": ["@ridgeview-clinic.test"]}).action == "pass"
    assert verdict(raw, screen={"allow_senders": ["jane.doe@ridgeview-clinic.test"]}).action == "pass"
    result = verdict(raw, screen={"allow_senders": ["@other.test"]})
    assert (result.action, result.rule) == ("ignore", "allow_list")


def test_the_rate_limit_ignores_a_sender_over_the_hourly_limit():
    assert verdict(message(), recent=19).action == "pass"
    result = verdict(message(), recent=20)
    assert (result.action, result.rule) == ("ignore", "rate_limit")
    assert "20 questions from this sender in the last hour" in result.reason
    assert verdict(message(), recent=500, screen={"max_per_sender_per_hour": 0}).action == "pass"


def test_mail_with_no_sender_is_quarantined_for_a_person():
    result = verdict(message(drop=("From",)))
    assert (result.action, result.rule) == ("quarantine", "sender")
    assert "sender" in result.reason


def test_an_unreadable_from_header_is_quarantined():
    assert verdict(message({"From": "=?utf-8?q?no_address_here?="})).action == "quarantine"


def test_encoded_words_in_the_subject_are_decoded_before_matching():
    raw = message({"Subject": "=?utf-8?q?Automatic_reply=3A_62303?="})
    assert verdict(raw).rule == "autoreply_subject"


def _shown(value):
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return type(value).__name__, str(value)


def test_the_header_index_answers_as_the_message_it_indexes():
    from consultant.screen import HeaderIndex

    raw = (b"From: Jane <jane@clinic.test>\r\nX-Note: one\r\nx-note: Two\r\nSubject: caf\xc3\xa9 \xe9\r\n"
           b"LIST-ID: <coders.lists.test>\r\nTo: ask@caseconsultant.test\r\n\r\nbody\r\n")
    message = headers_of(raw)
    index = HeaderIndex(message)
    for name in ("From", "x-note", "X-NOTE", "Subject", "List-Id", "To", "Missing"):
        assert (name in index) == (name in message), name
        for got, expected in ((index.get(name), message.get(name)), (index.get(name, "dflt"), message.get(name, "dflt")),
                              (index.get_all(name), message.get_all(name)),
                              (index.get_all(name, []), message.get_all(name, []))):
            assert _shown(got) == _shown(expected), name
    assert [str(v) for v in index.get_all("X-Note")] == ["one", "Two"]
    assert type(index.get("Subject")) is not str  # 8-bit bytes come back as a Header, as from Message
