"""The desk in a real browser: Debian's Chromium driven by Playwright against uvicorn on loopback."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlmodel import Session

from consultant import review
from consultant.db import make_engine
from consultant.send import Sender
from consultant.web.serve import DeskThread
from support import drafted, smtp_section
from websupport import PASSWORD, add_people, web_settings

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "mailbox_fixtures"
# The README's screenshots are refreshed only when asked (CONSULTANT_SCREENSHOTS=1), so a test run
# leaves the working tree as it found it; otherwise they go to a throwaway folder.
README_SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture
def shots(tmp_path) -> Path:
    return README_SCREENSHOTS if os.environ.get("CONSULTANT_SCREENSHOTS") == "1" else tmp_path
HOSTILE_TEXT = (
    "From: Mallory <mallory@clinic.test>\r\nTo: ask@caseconsultant.test\r\n"
    'Subject: <img src=x onerror="document.title=\'pwned\'"> 99213\r\nMessage-ID: <hostile-text@clinic.test>\r\n'
    "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    'Can I bill 99213? <script>window.pwned = 1; alert("script")</script>\r\n'
    '<img src=x onerror="window.pwned = 2; alert(\'img\')"> <svg onload="window.pwned = 3">\r\n').encode()
HOSTILE_HTML = (
    "From: Mallory <mallory@clinic.test>\r\nTo: ask@caseconsultant.test\r\nSubject: html question 99214\r\n"
    "Message-ID: <hostile-html@clinic.test>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    "<html><body><p>Is 99214 right? &lt;script&gt;window.pwned = 4&lt;/script&gt;</p>"
    "<script>window.pwned = 5</script><img src=x onerror=\"window.pwned = 6\">"
    "<iframe src=\"javascript:parent.pwned=7\"></iframe></body></html>\r\n").encode()


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium (no browser download). Missing, it fails the run like every other real
    server the tests need: a skipped browser test would prove nothing."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make test-deps` installs Debian's chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def world(sqlite_url, smtp):
    settings = web_settings(sqlite_url, smtp=smtp_section(smtp))
    engine = make_engine(sqlite_url)
    add_people(engine, {"alice": "reviewer", "bob": "reviewer", "olivia": "operator"})
    with DeskThread(settings, engine) as desk:
        yield settings, engine, desk
    engine.dispose()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.dialogs = []
    yield page
    context.close()


def sign_in(page, desk, name):
    page.goto(f"{desk.url}/")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state()


def test_a_reviewer_claims_the_oldest_question_edits_approves_and_it_is_sent(world, page, smtp, shots):
    settings, engine, desk = world
    oldest = drafted(engine, settings, (FIXTURES / "01-spine-myelogram-ct.eml").read_bytes())
    for name in ("02-em-mod25-injection-units.eml", "28-attachments-pdf-and-eml.eml", "38-known-and-unknown.eml"):
        drafted(engine, settings, (FIXTURES / name).read_bytes())
    sign_in(page, desk, "alice")
    assert page.url.endswith("/queue")
    assert page.inner_text("#waiting-count") == "4"
    page.screenshot(path=str(shots / "queue.png"))

    page.keyboard.press("n")  # next item: the oldest
    page.wait_for_url(f"**/questions/{oldest}")
    page.keyboard.press("c")  # claim
    page.wait_for_url(f"**/questions/{oldest}?msg=claimed")
    assert "You hold the claim" in page.inner_text(".claimbar")
    edited = page.input_value("#draft").replace("Hello", "Good morning", 1) + "\nReviewed by Alice, CPC."
    page.fill("#draft", edited)
    assert page.inner_text("#preview").strip() == edited.strip()  # the live preview runs under the CSP
    page.screenshot(path=str(shots / "question.png"))

    page.on("dialog", lambda dialog: dialog.accept())  # "a" asks before it approves
    page.keyboard.press("Escape")  # out of the editor, where "a" is just a letter
    page.keyboard.press("a")
    page.wait_for_url(f"**/questions/{oldest}?msg=approved")
    assert page.inner_text("#status") == "approved"

    assert Sender(engine, settings).run_once().sent == 1  # the real send stage, to aiosmtpd
    received = smtp.wait_for(1)[0].message
    assert "Reviewed by Alice, CPC." in received.get_body(("plain",)).get_content()
    page.reload()
    assert page.inner_text("#status") == "sent" and "Sent " in page.inner_text(".preview")


def test_markup_in_a_message_runs_no_script_in_the_page(world, page):
    settings, engine, desk = world
    text_q = drafted(engine, settings, HOSTILE_TEXT)
    html_q = drafted(engine, settings, HOSTILE_HTML)
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, desk, "alice")
    for qid in (text_q, html_q):
        page.goto(f"{desk.url}/questions/{qid}")
        page.wait_for_load_state("load")
        assert page.evaluate("window.pwned") is None
        assert page.title() != "pwned" and page.dialogs == []
        assert page.locator("#body img, #body script, #body svg, #body iframe, h1 img").count() == 0
    page.goto(f"{desk.url}/questions/{text_q}")
    assert "<script>window.pwned = 1;" in page.inner_text("#body")  # shown as text
    page.goto(f"{desk.url}/queue")
    assert page.evaluate("window.pwned") is None and page.dialogs == []


def test_the_operator_view_renders_its_charts(world, page, smtp, shots):
    settings, engine, desk = world
    ids = [drafted(engine, settings, (FIXTURES / name).read_bytes()) for name in (
        "01-spine-myelogram-ct.eml", "02-em-mod25-injection-units.eml", "05-icd-undotted-lowercase.eml",
        "06-category-ii-bp.eml", "13-preventive-problem-awv.eml", "47-quarantined-no-from.eml")]
    with Session(engine) as session:
        review.approve(session, ids[0], "alice", 30)
        review.approve(session, ids[1], "bob", 30, "Yes; see the attached guidance.")
        review.approve(session, ids[2], "alice", 30)
        review.reject(session, ids[3], "bob", "Needs the date of service", 30)
        session.commit()
    Sender(engine, settings).run_once()
    sign_in(page, desk, "olivia")
    assert page.url.endswith("/operator")
    for chart in ("#chart-hourly svg", "#chart-daily svg"):
        box = page.locator(chart).bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100
    assert page.locator("#chart-hourly svg rect.bar").count() > 0
    assert page.locator(f'form[action="/operator/requeue/{ids[5]}"]').count() == 1
    page.screenshot(path=str(shots / "operator.png"), full_page=True)
