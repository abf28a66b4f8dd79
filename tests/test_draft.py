"""Draft: reply kinds, code facts in the text, escaping of hostile content, threading headers."""
import pytest
from jinja2 import UndefinedError

from consultant.codeindex import CodeIndex
from consultant.config import Settings
from consultant.draft import draft_reply, environment, one_line, reply_subject, safe_msg_ids
from consultant.extract import find_codes
from consultant.lookup import CodeFacts, Related

TEMPLATES = Settings().templates_dir()
INDEX = CodeIndex(cpt=["62303", "72128", "99213"], hcpcs=["J1100"], icd=["M54.16", "M54.1"])


def facts_for(findings):
    table = {
        "62303": CodeFacts("62303", "CPT", True, "Myelogram, thoracic", "Dye and pictures of the mid spine.",
                           family_title="Myelography", source="starter",
                           related=[Related("62302", "CPT", "Myelogram, neck", "sibling")]),
        "72128": CodeFacts("72128", "CPT", True, "CT thoracic spine", "Plain CT of the mid back."),
        "M54.16": CodeFacts("M54.16", "ICD-10-CM", True, "Radiculopathy, lumbar region"),
        "M54.1": CodeFacts("M54.1", "ICD-10-CM", True, "Radiculopathy", billable=False,
                           related=[Related("M54.16", "ICD-10-CM", "Radiculopathy, lumbar region", "child")]),
    }
    return [table.get(f.code) or CodeFacts(f.code, f.system, False) for f in findings.asked()]


def draft(text, subject="62303 question", message_id="<q1@clinic.test>", references=(), name="Jane Doe"):
    findings = find_codes(text, INDEX)
    return draft_reply(question_id=7, templates=TEMPLATES, domain="caseconsultant.test",
                       service_name="CaseConsultant", from_name=name, to_addr="jane@clinic.test",
                       subject=subject, message_id=message_id, references=list(references),
                       new_text=text, findings=findings, facts=facts_for(findings))


def test_an_answer_lists_each_asked_code_with_its_title_description_and_related_codes():
    reply = draft("Can I bill 62303 with 72128, and do I need modifier 59? Dx M54.16")
    assert reply.kind == "answer"
    for part in (reply.text, reply.html):
        assert "62303" in part and "Myelogram, thoracic" in part and "Dye and pictures of the mid spine." in part
        assert "72128" in part and "M54.16" in part and "Radiculopathy, lumbar region" in part
        assert "62302" in part  # a related code
        assert "59" in part and "distinct service" in part  # the modifier asked about, explained
        assert "reviewed by a certified coder" in part


def test_a_header_icd_code_says_it_is_not_billable_and_lists_billable_children():
    reply = draft("Is M54.1 ok for 62303?")
    assert "not billable on its own" in reply.text and "M54.16" in reply.text


def test_a_message_without_codes_gets_the_no_codes_reply():
    reply = draft("What are your office hours?")
    assert reply.kind == "no_codes"
    assert "did not find a procedure, supply or diagnosis code" in reply.text


def test_a_message_with_only_unknown_codes_gets_the_unknown_codes_reply():
    reply = draft("Can I bill 27447 twice?")
    assert reply.kind == "unknown_codes" and "27447" in reply.text


def test_hostile_content_is_escaped_in_the_html_part():
    reply = draft("<script>alert(1)</script> 62303 <img src=x onerror=alert(2)>",
                  name="<b>Mallory</b>")
    assert "<script>" not in reply.html and "&lt;script&gt;" in reply.html
    assert "<img" not in reply.html and "<b>Mallory" not in reply.html


def test_threading_headers_are_fixed_at_draft_time():
    reply = draft("62303?", references=["<a@x.test>", "<b@x.test>"])
    assert reply.in_reply_to == "<q1@clinic.test>"
    assert reply.references == "<a@x.test> <b@x.test> <q1@clinic.test>"
    assert reply.message_id.startswith("<cc.7.") and reply.message_id.endswith("@caseconsultant.test>")
    assert draft("62303?").message_id != reply.message_id  # unique per draft


def test_hostile_threading_values_never_reach_a_header():
    reply = draft("62303?", message_id="<x@y>\r\nBcc: victim@x.test", references=["<ok@x.test>", "bad id"])
    assert reply.in_reply_to is None
    assert reply.references == "<ok@x.test>"
    assert safe_msg_ids(["<a b@c>", "<a@c>", "<a@c>\n"]) == ["<a@c>"]


def test_the_subject_is_one_clean_line_with_a_single_re():
    assert reply_subject("62303 question") == "Re: 62303 question"
    assert reply_subject("RE: 62303 question") == "RE: 62303 question"
    assert reply_subject("") == "Re: your coding question"
    assert reply_subject("a\r\nBcc: x@y.test") == "Re: a Bcc: x@y.test"
    assert "\n" not in draft("62303?", subject="line one\nline two").subject
    assert len(one_line("x" * 1000)) == 200


def test_templates_refuse_an_undefined_variable():
    template = environment(TEMPLATES).from_string("{{ nothing_here }}")
    with pytest.raises(UndefinedError):
        template.render()


def test_every_reply_kind_has_subject_text_and_html_templates():
    for kind in ("answer", "no_codes", "unknown_codes"):
        for part in ("subject", "txt", "html"):
            assert (TEMPLATES / "reply" / f"{kind}.{part}.j2").exists(), (kind, part)


def test_a_code_asked_again_with_other_modifiers_or_units_is_described_afresh():
    # Each code's block is rendered once per distinct code, facts, modifiers and units, and the
    # Lookup hands every question the same CodeFacts object: a later question about the same code
    # must not get the earlier one's modifiers or units.
    facts = facts_for(find_codes("62303", INDEX))

    def text_of(body):
        return draft_reply(question_id=9, templates=TEMPLATES, domain="caseconsultant.test",
                           service_name="CaseConsultant", from_name="Jane", to_addr="jane@clinic.test",
                           subject="q", message_id=None, references=[], new_text=body,
                           findings=find_codes(body, INDEX), facts=facts)

    first = text_of("Can I bill 62303-59 x2 today?")
    assert "Modifier 59" in first.text and "Units asked about: 2" in first.text
    again = text_of("Can I bill 62303 today?")
    assert "Modifier 59" not in again.text and "Units asked about" not in again.text
    assert "Modifier <strong>59</strong>" not in again.html
    assert text_of("Can I bill 62303-59 x2 today?").text == first.text


def test_new_facts_for_a_code_are_drafted_not_the_words_of_the_old_ones():
    # A new release gives the Lookup new CodeFacts objects for the same code.
    findings = find_codes("Is 72128 right?", INDEX)
    texts = []
    for title in ("CT thoracic spine", "CT chest spine, revised"):
        facts = [CodeFacts("72128", "CPT", True, title, "Plain CT of the mid back.")]
        texts.append(draft_reply(question_id=8, templates=TEMPLATES, domain="caseconsultant.test",
                                 service_name="CaseConsultant", from_name="Jane", to_addr="jane@clinic.test",
                                 subject="q", message_id=None, references=[], new_text="Is 72128 right?",
                                 findings=findings, facts=facts).text)
    assert "CT thoracic spine" in texts[0] and "revised" not in texts[0]
    assert "CT chest spine, revised" in texts[1]
