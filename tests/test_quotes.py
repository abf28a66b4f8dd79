"""Splitting what the sender wrote now from quoted history and signatures."""
from __future__ import annotations

import pytest

from consultant.quotes import split_quoted

GMAIL = "On Mon, Mar 2, 2026 at 9:00 AM Bob Roe <bob@consult.test> wrote:"


def test_text_without_history_is_all_new_text():
    assert split_quoted("Is 99213 right?\n\nThanks\n") == ("Is 99213 right?\n\nThanks", "", "")


def test_empty_text_splits_into_three_empty_parts():
    assert split_quoted("") == ("", "", "")


def test_quoted_lines_and_their_attribution_are_history():
    text = f"Then 99214?\n\n{GMAIL}\n> Use 99213.\n>\n>> Older question\n"
    assert split_quoted(text) == ("Then 99214?", f"{GMAIL}\n> Use 99213.\n>\n>> Older question", "")


def test_a_gmail_attribution_wrapped_over_two_lines_is_history():
    text = ("Then 99214?\n\nOn Mon, Mar 2, 2026 at 9:00 AM Bob Roe <bob@consult.test>\nwrote:\n\n"
            "> Use 99213.\n")
    new, quoted, _ = split_quoted(text)
    assert new == "Then 99214?"
    assert quoted.startswith("On Mon, Mar 2") and quoted.endswith("> Use 99213.")
    assert "wrote:" in quoted


def test_an_apple_mail_attribution_is_history():
    text = "Then 99214?\n\nOn 2 Mar 2026, at 09:00, Bob Roe <bob@consult.test> wrote:\n\n> Use 99213.\n"
    assert split_quoted(text)[0] == "Then 99214?"
    assert split_quoted(text)[1].startswith("On 2 Mar 2026, at 09:00")


def test_an_attribution_followed_by_unprefixed_text_starts_the_history():
    text = f"Then 99214?\n\n{GMAIL}\n\nUse 99213, the older answer.\n"
    assert split_quoted(text) == ("Then 99214?", f"{GMAIL}\n\nUse 99213, the older answer.", "")


@pytest.mark.parametrize("attribution", [
    "Am 02.03.2026 um 09:00 schrieb Bob Roe <bob@consult.test>:",
    "Le lun. 2 mars 2026 à 09:00, Bob Roe <bob@consult.test> a écrit :",
    "El lun, 2 mar 2026 a las 9:00, Bob Roe (<bob@consult.test>) escribió:",
])
@pytest.mark.parametrize("prefix", ["> ", ""])
def test_german_french_and_spanish_attributions_start_the_history(attribution, prefix):
    text = f"Neue Frage 99214?\n\n{attribution}\n{prefix}Alte Antwort 99213\n"
    new, quoted, _ = split_quoted(text)
    assert new == "Neue Frage 99214?"
    assert quoted == f"{attribution}\n{prefix}Alte Antwort 99213"


@pytest.mark.parametrize("separator", [
    "-----Original Message-----",
    "----- Original Message -----",
    "-------- Original Message --------",
    "---------- Forwarded message ---------",
    "Begin forwarded message:",
    "-----Ursprüngliche Nachricht-----",
])
def test_separator_lines_start_the_history(separator):
    text = f"FYI, what about 99215?\n\n{separator}\nFrom: Bob Roe\nOld text 99213\n"
    history = f"{separator}\nFrom: Bob Roe\nOld text 99213"
    assert split_quoted(text) == ("FYI, what about 99215?", history, "")


OUTLOOK_BLOCK = ("From: Bob Roe <bob@consult.test>\n{date}: Monday, March 2, 2026 9:00 AM\n"
                 "To: Jane Doe <jane@clinic.test>\nSubject: RE: visit\n\nOld answer 99213\n")


@pytest.mark.parametrize("date", ["Sent", "Date"])
@pytest.mark.parametrize("rule", ["", "________________________________\n"])
def test_an_outlook_header_block_starts_the_history(date, rule):
    text = "Is 99215 better?\n\n" + rule + OUTLOOK_BLOCK.format(date=date)
    new, quoted, signature = split_quoted(text)
    assert new == "Is 99215 better?"
    assert quoted.startswith(rule.strip() or "From: Bob Roe")
    assert quoted.endswith("Old answer 99213") and signature == ""


def test_a_german_outlook_header_block_starts_the_history():
    text = ("Ist 99215 besser?\n\nVon: Bob Roe\nGesendet: Montag, 2. März 2026 09:00\nAn: Jane\n"
            "Betreff: AW: Besuch\n\nAlt 99213\n")
    assert split_quoted(text)[0] == "Ist 99215 besser?"


def test_a_from_line_in_the_question_is_not_history():
    text = "From: the ER physician\nWe billed 99285 for the visit.\nIs that right?\n"
    assert split_quoted(text)[0] == text.strip()


def test_a_sentence_ending_in_wrote_keeps_its_place_in_the_new_text():
    text = "The payer wrote:\n> Denied: 99213 is not covered.\nWhy would that be?\n"
    new, quoted, _ = split_quoted(text)
    assert new == "The payer wrote:\nWhy would that be?"
    assert quoted == "> Denied: 99213 is not covered."


def test_inline_replies_keep_the_interleaved_new_text():
    text = (f"Answers inline.\n\n{GMAIL}\n> 1. Is it 99213?\nNo, 99214.\n\n"
            "> 2. Modifier 25?\nYes.\n\n-- \nJane Doe\n")
    new, quoted, signature = split_quoted(text)
    assert new == "Answers inline.\n\nNo, 99214.\n\nYes."
    assert quoted == f"{GMAIL}\n> 1. Is it 99213?\n\n> 2. Modifier 25?"
    assert signature == "Jane Doe"


def test_the_rfc3676_delimiter_starts_the_signature():
    text = "Is 99213 right?\n\n-- \nJane Doe, CPC\nClinic Coding Desk\n555-0100\n"
    assert split_quoted(text) == ("Is 99213 right?", "", "Jane Doe, CPC\nClinic Coding Desk\n555-0100")


def test_a_bare_double_dash_starts_a_short_signature():
    assert split_quoted("Is 99213 right?\n--\nJane\n") == ("Is 99213 right?", "", "Jane")


def test_a_bare_double_dash_before_a_long_text_is_not_a_signature():
    body = "\n".join(f"line {i}" for i in range(20))
    assert split_quoted(f"Question\n--\n{body}") == (f"Question\n--\n{body}", "", "")


def test_a_signature_before_the_quoted_history_ends_where_the_history_starts():
    text = f"Use 99214.\n\n-- \nJane Doe\n\n{GMAIL}\n> Which code?\n"
    assert split_quoted(text) == ("Use 99214.", f"{GMAIL}\n> Which code?", "Jane Doe")


@pytest.mark.parametrize("line", [
    "Sent from my iPhone",
    "Sent from my Galaxy",
    "Sent from Mail for Windows",
    "Get Outlook for iOS",
    "Get Outlook for Android<https://aka.ms/ghei36>",
])
def test_mobile_client_lines_are_the_signature(line):
    text = f"Is 99213 right?\n\n{line}\n\n{GMAIL}\n> older\n"
    assert split_quoted(text) == ("Is 99213 right?", f"{GMAIL}\n> older", line)


def test_a_sentence_starting_with_sent_from_is_new_text():
    text = "Sent from the lab on Monday, the report lists 80053 and 85025 twice; is that allowed?"
    assert split_quoted(text) == (text, "", "")


def test_a_signature_delimiter_inside_the_quote_stays_in_the_history():
    text = f"Thanks!\n\n{GMAIL}\n> Use 99213.\n> -- \n> Bob\n"
    assert split_quoted(text) == ("Thanks!", f"{GMAIL}\n> Use 99213.\n> -- \n> Bob", "")


def test_carriage_returns_are_treated_as_newlines():
    assert split_quoted("New\r\n\r\n> old\r\n") == ("New", "> old", "")


def test_pathological_input_is_split_in_linear_time():
    # Thousands of delimiter lines would take hours if each scanned to the end of the text.
    split_quoted("--\n" * 200_000)
    split_quoted("On x\n" * 100_000 + "> q\n")
