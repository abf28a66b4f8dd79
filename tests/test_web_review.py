"""The reviewer's pages: the queue, one question, and the review actions, as a browser posts them."""
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update
from sqlmodel import Session

from consultant import queries, review
from consultant.models import Event, Question, QuestionCode, utcnow
from support import drafted, question_bytes
from websupport import add_people, csrf_of, post, signed_in, web_settings

# alice and bob review; olivia operates; ada administers (websupport.PEOPLE).
HOSTILE = (
    'From: "<img src=x onerror=alert(1)>" <mallory@clinic.test>\r\nTo: ask@caseconsultant.test\r\n'
    'Subject: <script>alert("subject")</script> about 99213\r\nMessage-ID: <hostile1@clinic.test>\r\n'
    "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    'Can I bill 99213 with modifier 25? <script>document.title="pwned"</script>\r\n'
    '<img src=x onerror="document.title=\'pwned\'"> </textarea><b>bold</b>\r\n').encode()
WITH_HISTORY = (
    "From: Dana Lee <dana@ridgeview.test>\r\nTo: ask@caseconsultant.test\r\nCc: billing@ridgeview.test\r\n"
    "Subject: follow-up on 62303\r\nMessage-ID: <hist1@ridgeview.test>\r\nMIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n'
    "Thanks. So 62303 with 72128, and is 59 right?\r\n\r\nOn Mon, Mar 2, 2026 at 9:00 AM Ask wrote:\r\n"
    "> Earlier we talked about 99214.\r\n> Second quoted line.\r\n\r\n"
    '--b1\r\nContent-Type: application/pdf; name="note.pdf"\r\nContent-Disposition: attachment; filename="note.pdf"\r\n'
    "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n").encode()


@pytest.fixture
def settings(db_url):
    return web_settings(db_url)


@pytest.fixture
def alice(settings, engine):
    add_people(engine)
    return signed_in(settings, engine, "alice")


@pytest.fixture
def bob(settings, engine, alice):
    return signed_in(settings, engine, "bob")


@pytest.fixture
def qid(engine, settings):
    return drafted(engine, settings, question_bytes(1))


def question(engine, qid) -> Question:
    with Session(engine) as session:
        return session.get(Question, qid)


def actions(engine, qid):
    with Session(engine) as session:
        return [(e.actor, e.action, e.to_status, e.reason) for e in session.execute(
            select(Event).where(Event.question_id == qid).order_by(Event.id)).scalars()]


def page_of(client, qid):
    return client.get(f"/questions/{qid}").text


def bulk_drafted(engine, n: int, code: str = "99213", claimed_by: str | None = None) -> list[int]:
    """n drafted questions in one INSERT, oldest first (the pipeline would take minutes for many)."""
    now = utcnow()
    rows = [dict(status="in_review" if claimed_by else "drafted", dedupe_key=f"<bulk{code}{i}@t>", attempts=0,
                 size=100, body_downloaded=True, received_at=now - timedelta(minutes=n - i), updated_at=now,
                 from_addr=f"coder{i}@clinic.test", subject=f"bulk question {i}",
                 codes=[dict(code=code, system="CPT", quoted=False, modifiers=[], units=1, known=True, spans=[])],
                 claimed_by=claimed_by, claimed_until=now + timedelta(minutes=30) if claimed_by else None)
            for i in range(n)]
    with Session(engine) as session:
        session.execute(insert(Question), rows)
        session.commit()
        return list(session.execute(select(Question.id).where(Question.dedupe_key.like(f"<bulk{code}%"))
                                    .order_by(Question.id)).scalars())


def test_the_queue_lists_drafted_questions_oldest_first_with_what_a_reviewer_needs(engine, settings, alice):
    first = drafted(engine, settings, question_bytes(1))
    second = drafted(engine, settings, question_bytes(2, body="Is 99214 right for this visit?"))
    html = alice.get("/queue").text
    assert html.index(f'href="/questions/{first}"') < html.index(f'href="/questions/{second}"')
    assert "coder1@ridgeview-clinic.test" in html and "myelogram question 1" in html
    assert ">62303<" in html and ">72128<" in html and ">M54.16<" in html and ">99214<" in html
    assert '<strong id="waiting-count">2</strong>' in html and 'id="oldest-age"' in html


def test_the_queue_filters_by_status_code_and_mine(engine, settings, alice):
    spine = drafted(engine, settings, question_bytes(1))
    visit = drafted(engine, settings, question_bytes(2, body="Is 99214 right for this visit?"))
    assert post(alice, f"/questions/{visit}/claim").status_code == 303
    quoted = drafted(engine, settings, question_bytes(3, body="Thanks!\r\n\r\n> Is 99214 right for this visit?"))
    by_code = alice.get("/queue", params={"code": "99214"}).text
    assert f"/questions/{visit}" in by_code and f"/questions/{spine}" not in by_code
    assert f"/questions/{quoted}" not in by_code  # only in the quoted history: not asked
    assert f"/questions/{quoted}" in alice.get("/queue").text
    by_diagnosis = alice.get("/queue", params={"code": "m5416"}).text  # typed without the dot
    assert f"/questions/{spine}" in by_diagnosis and f"/questions/{visit}" not in by_diagnosis
    mine = alice.get("/queue", params={"mine": "1"}).text
    assert f"/questions/{visit}" in mine and f"/questions/{spine}" not in mine
    drafted_only = alice.get("/queue", params={"status": "drafted"}).text
    assert f"/questions/{spine}" in drafted_only and f"/questions/{visit}" not in drafted_only
    in_review = alice.get("/queue", params={"status": "in_review"}).text
    assert ">alice<" in in_review
    odd = alice.get("/queue", params={"status": "<b>x", "code": "'; drop"})
    assert odd.status_code == 200 and "Unknown status" in odd.text and "<b>x" not in odd.text


def pages_each_way(client, url: str, ids: list[int]) -> tuple[list[int], list[int]]:
    """The ids seen following "next" from url to the end, and those on the page "prev" leads to
    from the last page."""
    seen = []
    while True:
        html = client.get(url).text
        seen += [i for i in ids if f'<td><a href="/questions/{i}">' in html]
        if '" rel="next">' not in html:
            break
        url = html.split('" rel="next">')[0].rsplit('href="', 1)[1].replace("&amp;", "&")
    older = html.split('" rel="prev">')[0].rsplit('href="', 1)[1].replace("&amp;", "&")
    return seen, [i for i in ids if f'<td><a href="/questions/{i}">' in client.get(older).text]


def test_keyset_pages_cover_the_queue_once_each_way(engine, settings, alice):
    ids = bulk_drafted(engine, 120)
    seen, back = pages_each_way(alice, "/queue", ids)
    assert seen == ids and back == ids[50:100]


def test_the_code_filter_pages_through_both_waiting_statuses_and_both_forms_in_order(engine, settings, alice):
    ids = bulk_drafted(engine, 150)
    asked = [i for i in ids if i % 5]  # every fifth question is about something else
    with Session(engine) as session:
        session.execute(update(Question).where(Question.id.in_(ids[::3])).values(status="in_review", claimed_by="bob"))
        session.execute(update(Question).where(Question.id.in_(ids[1::7])).values(status="sent"))
        session.execute(insert(QuestionCode), [dict(question_id=i, system="ICD-10-CM", quoted=False,
                                                     code="M5416" if i % 2 else "M54.16") for i in asked])
        session.commit()
        waiting = [i for i in asked if session.get(Question, i).status != "sent"]
    seen, back = pages_each_way(alice, "/queue?code=m5416", ids)  # matches both forms
    assert len(waiting) > 100 and seen == waiting and back == waiting[50:100]


def test_next_item_is_your_own_claim_then_the_oldest_unclaimed(engine, settings, alice, bob):
    first, second = (drafted(engine, settings, question_bytes(n)) for n in (1, 2))
    assert alice.get("/next").headers["location"] == f"/questions/{first}"
    post(bob, f"/questions/{first}/claim")
    assert alice.get("/next").headers["location"] == f"/questions/{second}"
    assert bob.get("/next").headers["location"] == f"/questions/{first}"
    post(alice, f"/questions/{second}/claim")
    assert alice.get("/next").headers["location"] == f"/questions/{second}"


def test_next_item_with_an_empty_queue_says_so(alice):
    response = alice.get("/next")
    assert response.headers["location"] == "/queue?msg=empty"
    assert "Nothing is waiting" in alice.get(response.headers["location"]).text


def test_the_question_page_shows_the_message_the_draft_the_codes_and_the_history(engine, settings, alice):
    qid = drafted(engine, settings, WITH_HISTORY)
    html = page_of(alice, qid)
    assert "dana@ridgeview.test" in html and "billing@ridgeview.test" in html  # From and Cc headers
    assert '<a class="code" href="/codes/CPT/62303" title="CPT"><mark>62303</mark></a>' in html
    assert '<details class="quoted"><summary>Quoted history' in html and "Earlier we talked about 99214." in html
    assert "note.pdf" in html and "application/pdf" in html and "never opened" in html
    assert 'href="/codes/CPT/62303"' in html and 'id="code-72128"' in html and "Source:" in html
    assert '<textarea name="text" id="draft"' in html and 'id="preview"' in html
    assert 'id="claim-button"' in html and 'id="approve-button"' in html and 'id="reject-button"' in html
    assert "<kbd>n</kbd> next item" in html and "<kbd>a</kbd> approve" in html
    assert "drafted" in html.split('<table class="events">')[1]


def test_hostile_content_is_shown_as_text_never_as_markup(engine, settings, alice):
    qid = drafted(engine, settings, HOSTILE)
    html = page_of(alice, qid)
    for raw in ("<script>", "<img src=x", "</textarea><b>", "onerror=alert(1)>"):
        assert raw not in html
    assert "&lt;script&gt;document.title=" in html and "&lt;img src=x onerror=" in html
    assert "&lt;script&gt;alert(" in html  # the subject, escaped
    queue = alice.get("/queue").text
    assert "<script>alert" not in queue and "&lt;script&gt;alert(" in queue


def test_claim_then_a_second_reviewer_is_refused_with_a_message(engine, qid, alice, bob):
    assert post(alice, f"/questions/{qid}/claim").headers["location"] == f"/questions/{qid}?msg=claimed"
    assert (question(engine, qid).status, question(engine, qid).claimed_by) == ("in_review", "alice")
    for action, data in (("claim", {}), ("approve", {"text": "mine now"}), ("save", {"text": "x"}),
                         ("release", {}), ("reject", {"reason": "no"})):
        refused = post(bob, f"/questions/{qid}/{action}", **data)
        assert refused.status_code == 409, action
        assert "claimed by alice" in refused.text
    page = page_of(bob, qid)
    assert 'id="held-by"' in page and "Claimed by alice" in page
    assert question(engine, qid).status == "in_review"


def test_saving_an_edit_keeps_it_beside_the_draft_and_records_it(engine, qid, alice):
    response = post(alice, f"/questions/{qid}/save", text="Hello,\r\n\r\nYes: bill 62303 with 72128.\r\n")
    assert response.status_code == 303
    with Session(engine) as session:
        reply = queries.reply(session, qid)
        assert reply.edited_text == "Hello,\n\nYes: bill 62303 with 72128.\n" and reply.edited_by == "alice"
        assert reply.text != reply.edited_text
    assert ("alice", "edit") in [(a, b) for a, b, _, _ in actions(engine, qid)]
    assert "Yes: bill 62303 with 72128." in page_of(alice, qid)


def test_an_empty_edit_is_refused_and_the_typed_text_is_kept(engine, qid, alice):
    response = post(alice, f"/questions/{qid}/save", text="   ")
    assert response.status_code == 409 and "empty" in response.text


def test_approving_the_untouched_draft_records_approved_as_drafted(engine, qid, alice):
    page = alice.get(f"/questions/{qid}").text
    draft = page.split('id="draft" rows="16" spellcheck="true">')[1].split("</textarea>")[0]
    import html as html_module
    response = alice.post(f"/questions/{qid}/approve", data={"csrf": csrf_of(page),
                                                              "text": html_module.unescape(draft).replace("\n", "\r\n")})
    assert response.headers["location"] == f"/questions/{qid}?msg=approved"
    assert question(engine, qid).status == "approved"
    assert ("alice", "approve", "approved", "approved as drafted") in actions(engine, qid)
    with Session(engine) as session:
        assert queries.reply(session, qid).edited_text is None


def test_approving_a_changed_text_records_the_edit_and_the_approval(engine, qid, alice):
    post(alice, f"/questions/{qid}/approve", text="Short answer: yes, with modifier 59.")
    assert ("alice", "approve", "approved", "approved with edits") in actions(engine, qid)
    with Session(engine) as session:
        assert queries.reply(session, qid).edited_text == "Short answer: yes, with modifier 59.\n"


def test_reject_needs_a_reason_and_can_notify_the_asker(engine, qid, alice):
    refused = post(alice, f"/questions/{qid}/reject", reason=" ")
    assert refused.status_code == 409 and "reason is required" in refused.text
    post(alice, f"/questions/{qid}/reject", reason="Needs the operative note", notify="1")
    assert question(engine, qid).status == "rejected"
    assert ("alice", "reject", "rejected", "Needs the operative note") in actions(engine, qid)
    with Session(engine) as session:
        assert queries.reply(session, qid, "notice").to_send is True


def test_release_gives_the_question_back_and_an_admin_may_release_anyones(engine, settings, qid, alice):
    post(alice, f"/questions/{qid}/claim")
    post(alice, f"/questions/{qid}/release")
    assert question(engine, qid).status == "drafted"
    post(alice, f"/questions/{qid}/claim")
    ada = signed_in(settings, engine, "ada")
    assert post(ada, f"/questions/{qid}/release").status_code == 303
    assert question(engine, qid).status == "drafted"


def test_a_finished_question_shows_no_review_buttons_and_refuses_actions(engine, qid, alice):
    with Session(engine) as session:
        review.approve(session, qid, "alice", 30)
        session.commit()
    html = page_of(alice, qid)
    assert 'id="approve-button"' not in html and 'id="claim-button"' not in html
    assert post(alice, f"/questions/{qid}/claim").status_code == 409


def test_an_unknown_question_is_404(alice):
    assert alice.get("/questions/999999").status_code == 404
    assert post(alice, "/questions/999999/claim").status_code == 404
