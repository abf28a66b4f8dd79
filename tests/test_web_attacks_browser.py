"""Stored script in a real browser: pages full of hostile mail and hostile edits run nothing (no
dialog, no flag set by a payload, no script error, no Content-Security-Policy report)."""
from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlmodel import Session

from attacksupport import ALL, PAYLOADS, SHORT, hostile_question, html_only_question
from consultant import review, states
from consultant.db import make_engine
from consultant.web.serve import DeskThread
from support import drafted_all
from test_web_browser import chromium, sign_in  # noqa: F401 (chromium is a fixture)
from websupport import add_people, web_settings


@pytest.fixture
def desk(sqlite_url):
    settings, engine = web_settings(sqlite_url), make_engine(sqlite_url)
    add_people(engine, {"ada": "admin"})
    edited, html_only, stuck = drafted_all(engine, settings, hostile_question(1), html_only_question(2),
                                           hostile_question(3))
    with Session(engine) as session:
        review.edit(session, edited, "ada", f"Edited:\n{ALL}", 30)
        review.reject(session, html_only, "ada", f"{SHORT} {PAYLOADS[0]}", 30)
        states.transition(session, stuck, "drafted", "quarantined", "worker", f"parse failed: {SHORT}")
        session.commit()
    with DeskThread(settings, engine) as thread:
        yield thread, (edited, html_only, stuck)
    engine.dispose()


def test_pages_full_of_hostile_mail_run_no_script(chromium, desk):  # noqa: F811
    thread, (edited, html_only, stuck) = desk
    context = chromium.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    trouble: list[str] = []
    page.on("dialog", lambda dialog: (trouble.append(f"dialog {dialog.message}"), dialog.dismiss()))
    page.on("pageerror", lambda exc: trouble.append(f"page error {exc}"))
    # Console errors include a refused inline script or style (the CSP's report); a 404 or 422 status
    # of a page or of /favicon.ico is only the network's say.
    page.on("console", lambda msg: trouble.append(f"console {msg.text}")
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    try:
        sign_in(page, thread, "ada")
        pages = ["/queue", f"/questions/{edited}", f"/questions/{html_only}", f"/questions/{stuck}", "/operator",
                 "/queue?status=quarantined", "/codes?q=" + quote(PAYLOADS[7]), "/queue?after=" + quote(SHORT)]
        for path in pages:
            page.goto(thread.url + path)
            page.wait_for_load_state("load")
            assert page.evaluate("typeof window.pwned") == "undefined", path
            assert page.locator("main img, main iframe, main math, main script, main [onerror], main [onload]"
                                ).count() == 0, path
            assert trouble == [], f"{path}: {trouble}"
        page.goto(f"{thread.url}/questions/{edited}")
        assert page.input_value("#draft") == f"Edited:\n{ALL}\n"  # the editor holds the text, unbroken
        assert "[U+202E]" in page.inner_text("dl.headers")  # the override is shown, not obeyed
        page.fill("#draft", f"{PAYLOADS[1]} {PAYLOADS[6]}")  # the live preview is text, not markup
        assert page.inner_text("#preview") == f"{PAYLOADS[1]} {PAYLOADS[6]}"
        assert page.locator("#preview *").count() == 0 and page.evaluate("typeof window.pwned") == "undefined"
        assert trouble == []
    finally:
        context.close()
