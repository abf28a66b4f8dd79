"""Attacks on the desk, part one: stored and reflected script through everything that comes from mail
or from a form, on every page that shows it; and open redirects after login."""
from urllib.parse import quote, urlsplit

import pytest
from sqlmodel import Session

from attacksupport import (ALL, LOCAL, PAYLOADS, SHORT, assert_inert, database_copy, hostile_question,
                           html_only_question, inspect)
from consultant import queries, review, rules, states
from consultant.db import make_engine
from consultant.web.login import _safe_next
from mailbuild import mail, text
from support import drafted_all
from websupport import PASSWORD, add_people, client_for, csrf_of, post, signed_in, web_settings

BIDI_SHOWN = "[U+202E]"
TEMPLATE = "{{ 7*7 }}"
REASON = f"{SHORT} {PAYLOADS[0]} {PAYLOADS[6]}"  # what a reviewer types as a reason for rejecting
HELD = f"{rules.SENDER_AUTH} failed: {SHORT}"  # also listed as held back on the operator page
EDIT = f"Answer edited by a hostile reviewer:\n{ALL}\n"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request, tmp_path_factory):
    """One database per module (the pages only read it): questions in every state a page lists, each
    carrying payloads: one claimed and edited by alice, one rejected with a hostile reason, one
    quarantined and one failed with hostile reasons, one without a sender."""
    url = database_copy(request, request.param, tmp_path_factory.mktemp("attacks"))
    settings, engine = web_settings(url), make_engine(url)
    add_people(engine)
    orphan = mail(text(f"What about 99213? {ALL}"), From=None, Subject=f"no sender {SHORT}", Message_ID="<o@x.test>")
    names = ("edited", "rejected", "quarantined", "failed", "orphan")
    ids = dict(zip(names, drafted_all(engine, settings, hostile_question(1), html_only_question(2),
                                      hostile_question(3), hostile_question(4), orphan)))
    with Session(engine) as session:
        review.claim(session, ids["edited"], "alice", 30)
        review.edit(session, ids["edited"], "alice", EDIT, 30)
        review.reject(session, ids["rejected"], "bob", REASON, 30)
        states.transition(session, ids["quarantined"], "drafted", "quarantined", "screen", HELD)
        review.approve(session, ids["failed"], "bob", 30)
        states.transition(session, ids["failed"], "approved", "sending", "sender")
        states.transition(session, ids["failed"], "sending", "failed", "sender", f"550 <{LOCAL}> {SHORT}")
        queries.reply(session, ids["failed"]).last_error = f"550 5.1.1 {SHORT} unknown"
        session.commit()
    yield settings, engine, ids
    engine.dispose()


def test_every_field_from_mail_is_shown_as_text_on_the_question_page(world):
    settings, engine, ids = world
    alice = signed_in(settings, engine, "alice")
    page = assert_inert(alice.get(f"/questions/{ids['edited']}").text, "question (claimed, edited)", shows=(
        SHORT, LOCAL, BIDI_SHOWN, TEMPLATE, 'x.pdf"><img src=x onerror=window.pwned=12>.pdf',
        "application/octet-stream", *PAYLOADS))  # a garbled type is named as such, never echoed
    assert page.textareas == [EDIT]  # the </textarea> in the edit did not end the editor
    ada = signed_in(settings, engine, "ada")
    for name in ("rejected", "quarantined", "failed", "orphan"):
        assert_inert(ada.get(f"/questions/{ids[name]}").text, f"question ({name})", shows=(SHORT,))
    rejected = ada.get(f"/questions/{ids['rejected']}").text
    assert_inert(rejected, "history", shows=(" ".join(REASON.split()), "<script>window.pwned=14</script>"))
    assert "550 5.1.1" in ada.get(f"/questions/{ids['failed']}").text


def test_the_drafts_subject_keeps_template_syntax_as_text(world):
    _, engine, ids = world
    with Session(engine) as session:
        reply = queries.reply(session, ids["quarantined"])
    assert TEMPLATE in reply.subject and "49" not in reply.subject


def test_a_refused_edit_comes_back_in_the_editor_as_text(world):
    settings, engine, ids = world
    bob = signed_in(settings, engine, "bob")
    typed = f"{PAYLOADS[6]} {PAYLOADS[1]}"
    refused = post(bob, f"/questions/{ids['edited']}/save", text=typed)
    assert refused.status_code == 409  # alice holds it
    assert assert_inert(refused.text, "409 question page").textareas == [typed]
    orphan = bob.get(f"/questions/{ids['orphan']}")  # quarantined (no sender): no editor, still inert
    assert_inert(orphan.text, "quarantined question", shows=(SHORT,))


def test_the_queue_lists_and_filters_echo_nothing_live(world):
    settings, engine, _ = world
    alice = signed_in(settings, engine, "alice")
    assert_inert(alice.get("/queue").text, "queue", shows=(SHORT, LOCAL, BIDI_SHOWN))
    assert_inert(alice.get("/queue?mine=1").text, "queue, mine", shows=(SHORT,))
    for status, subject in (("rejected", f"html {SHORT}"), ("quarantined", SHORT), ("failed", SHORT),
                            ("in_review", SHORT)):
        assert_inert(alice.get(f"/queue?status={status}").text, f"queue {status}", shows=(subject,))
    for hostile in (f"status={quote(SHORT)}", f"code={quote(SHORT)}", f"code={quote(PAYLOADS[0])}&status=x%22%3E"):
        response = alice.get(f"/queue?{hostile}")
        assert response.status_code == 200 and ("not a code" in response.text or "Unknown status" in response.text)
        assert_inert(response.text, f"queue ?{hostile}")
        filters = response.text.split('class="filters"', 1)[1].split("</form>", 1)[0]
        assert "onerror" not in filters and "script" not in filters  # a refused filter is not echoed at all


def test_the_operator_lists_show_hostile_subjects_and_reasons_as_text(world):
    settings, engine, _ = world
    html = signed_in(settings, engine, "olivia").get("/operator").text
    assert_inert(html, "operator", shows=(SHORT, HELD, "550 5.1.1", " ".join(REASON.split())))
    held_back = html.split('class="problems held-back-list"', 1)[1].split("</table>", 1)[0]
    assert_inert(held_back, "held back", shows=(HELD,))


def test_code_pages_search_and_error_pages_echo_input_as_text(world):
    settings, engine, _ = world
    ada = signed_in(settings, engine, "ada")
    query = f"{PAYLOADS[7]} {PAYLOADS[0]}"
    search = ada.get("/codes", params={"q": query})
    assert search.status_code == 200
    assert_inert(search.text, "code search", shows=(query,))
    for url, status in ((f"/codes/CPT/{quote(PAYLOADS[1], safe='')}", 404), (f"/codes/{quote(SHORT, safe='')}/1", 404),
                        (f"/questions/{quote(PAYLOADS[0], safe='')}", 404), ("/queue?after=" + quote(SHORT), 422),
                        ("/operator?q_after=" + quote(PAYLOADS[0]), 422), ("/nowhere" + quote(PAYLOADS[0]), 404)):
        response = ada.get(url)
        assert response.status_code == status, url
        assert response.headers["content-type"].startswith("text/html"), url  # never JSON echoing the input
        assert_inert(response.text, url)


def test_the_login_form_echoes_a_hostile_name_and_next_as_text(world):
    settings, engine, _ = world
    client = client_for(settings, engine)
    form = client.get("/login", params={"next": f"/queue{PAYLOADS[7]}"})
    assert_inert(form.text, "login form")
    refused = client.post("/login", data={"name": SHORT, "password": "wrong", "next": PAYLOADS[0],
                                          "csrf": csrf_of(form.text)})
    assert refused.status_code == 401
    assert_inert(refused.text, "refused login", shows=(SHORT[:40],))


# Open redirects: whatever `next` says, the login lands on a path of this site.
EVIL_NEXT = ["//evil.test", "https://evil.test/x", "http:evil.test", "/\\evil.test", "\\\\evil.test", "/\\/evil.test",
             "javascript:alert(1)", " javascript:alert(1)", "%2F%2Fevil.test", "/%2F%2Fevil.test", "/\t/evil.test",
             "/\n/evil.test", "/queue\r\nSet-Cookie: pwned=1", "/queue\r\nLocation: https://evil.test",
             "/login?next=//evil.test", "/login?next=https%3A%2F%2Fevil.test", "///evil.test", "/\u3002/evil.test",
             "https:/evil.test", "data:text/html,<script>alert(1)</script>", "/\u202e//evil.test", "", "evil.test"]


def assert_same_site(location: str) -> None:
    assert "\r" not in location and "\n" not in location and "\\" not in location, location
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc, location
    assert location.startswith("/") and not location.startswith("//"), location
    assert parts.path not in ("/login", "/logout"), location  # no chain back through the login


def test_next_is_always_a_path_of_this_site():
    for target in EVIL_NEXT:
        assert_same_site(_safe_next(target))
    for kept in ("/questions/7", "/queue?status=rejected&code=99213", "/codes/CPT/99213", "/codes?q=lumbar puncture"):
        assert _safe_next(kept) == kept


def test_a_login_never_redirects_off_the_site_whatever_next_says(sqlite_url, sqlite_engine):
    settings = web_settings(sqlite_url)
    add_people(sqlite_engine, {"alice": "reviewer"})
    client = client_for(settings, sqlite_engine)
    for target in EVIL_NEXT:  # the form carries only a safe next
        form = client.get("/login", params={"next": target})
        assert_same_site(assert_inert(form.text, f"login form next={target!r}").fields["next"])
    for target in ("//evil.test", "/\\evil.test", "/\t/evil.test", "/queue\r\nSet-Cookie: pwned=1",
                   "/login?next=//evil.test", "javascript:alert(1)", "/questions/7"):
        client.cookies.clear()
        response = client.post("/login", data={"name": "alice", "password": PASSWORD, "next": target,
                                               "csrf": csrf_of(client.get("/login").text)})
        assert response.status_code == 303, target
        assert_same_site(response.headers["location"])
        assert "pwned" not in response.headers.get("set-cookie", ""), target
        assert response.headers.get_list("location") == [response.headers["location"]], target
    assert response.headers["location"] == "/questions/7"  # a real path on this site is kept


def test_the_way_back_after_the_login_keeps_the_page_asked_for(sqlite_url, sqlite_engine):
    settings = web_settings(sqlite_url)
    add_people(sqlite_engine, {"alice": "reviewer"})
    client = client_for(settings, sqlite_engine)
    bounced = client.get("/questions/5")
    assert bounced.status_code == 303 and bounced.headers["location"] == "/login?next=/questions/5"
    form = client.get(bounced.headers["location"])
    next_field = inspect(form.text).fields["next"]
    response = client.post("/login", data={"name": "alice", "password": PASSWORD, "next": next_field,
                                           "csrf": csrf_of(form.text)})
    assert response.headers["location"] == "/questions/5"


def test_approving_a_draft_that_greets_a_hidden_override_is_no_edit(db_url, engine):
    """The editor shows the override as a mark; sent back unchanged, that is still the draft."""
    settings = web_settings(db_url)
    add_people(engine, {"alice": "reviewer"})
    qid = drafted_all(engine, settings, hostile_question(5))[0]
    alice = signed_in(settings, engine, "alice")
    page = alice.get(f"/questions/{qid}").text
    shown = inspect(page).textareas[0]
    assert BIDI_SHOWN in shown and "\u202e" not in shown
    sent_back = {"text": shown.replace("\n", "\r\n"), "csrf": csrf_of(page)}  # as a browser posts a textarea
    response = alice.post(f"/questions/{qid}/approve", data=sent_back)
    assert response.status_code == 303
    with Session(engine) as session:
        reply = queries.reply(session, qid)
        assert reply.edited_text is None and "\u202e" in reply.text
        assert queries.get(session, qid).status == "approved"
