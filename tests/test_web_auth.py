"""The desk's door: sessions, logins and their throttling, CSRF, roles and security headers."""
from datetime import timedelta

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select
from sqlmodel import Session

from consultant import accounts
from consultant.accounts import LoginEvent
from consultant.models import utcnow
from consultant.opstables import ServiceRun
from consultant.web.session import COOKIE
from support import drafted, question_bytes
from websupport import (PASSWORD, SECRET, add_people, client_for, csrf_of, login, post, signed_in,
                        web_settings)

# alice reviews, olivia operates, ada administers (see websupport.PEOPLE).
PAGES = ["/", "/queue", "/next", "/questions/1", "/codes", "/codes/CPT/99213", "/operator", "/metrics"]


@pytest.fixture
def settings(db_url):
    return web_settings(db_url)


@pytest.fixture
def people(engine):
    add_people(engine)


def outcomes(engine):
    with Session(engine) as session:
        return [(e.name, e.outcome) for e in session.execute(select(LoginEvent).order_by(LoginEvent.id)).scalars()]


def test_without_a_session_every_page_sends_you_to_the_login_form(settings, engine):
    client = client_for(settings, engine)
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 303, page
        assert response.headers["location"].startswith("/login"), page


def test_the_login_form_and_healthz_need_no_session(settings, engine):
    client = client_for(settings, engine)
    assert client.get("/login").status_code == 200
    assert client.get("/healthz").status_code in (200, 503)


def test_a_login_sets_a_new_httponly_lax_cookie_and_a_new_csrf_token(settings, engine, people):
    client = client_for(settings, engine)
    before_page = client.get("/login")
    before_cookie, before_token = client.cookies[COOKIE], csrf_of(before_page.text)
    response = client.post("/login", data={"name": "alice", "password": PASSWORD, "csrf": before_token})
    assert response.status_code == 303 and response.headers["location"] == "/"
    set_cookie = response.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie and "Secure" not in set_cookie
    assert client.cookies[COOKIE] != before_cookie
    assert csrf_of(client.get("/queue").text) != before_token
    assert outcomes(engine) == [("alice", "ok")]


def test_over_https_the_cookie_is_secure(settings, engine, people):
    client = client_for(settings, engine)
    client.base_url = "https://testserver"
    response = login(client, "alice")
    assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]


def test_a_wrong_password_or_unknown_name_gets_the_same_answer_and_is_audited(settings, engine, people):
    client = client_for(settings, engine)
    wrong = login(client, "alice", "not the password")
    unknown = login(client, "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "The name or the password is wrong" in wrong.text and "The name or the password is wrong" in unknown.text
    assert client.get("/queue").status_code == 303
    assert outcomes(engine) == [("alice", "bad-password"), ("nobody", "unknown-user")]


def test_too_many_failures_for_one_account_lock_it_even_with_the_right_password(settings, engine, people):
    client = client_for(settings, engine)
    for _ in range(settings.web.login_failures_per_user):
        assert login(client, "alice", "guess").status_code == 401
    refused = login(client, "alice")
    assert refused.status_code == 429 and "Too many failed attempts" in refused.text
    assert login(client, "bob").status_code == 303  # another account from the same address still works
    assert outcomes(engine)[-2:] == [("alice", "throttled"), ("bob", "ok")]


def test_too_many_failures_from_one_address_lock_every_account_from_it(db_url, engine, people):
    settings = web_settings(db_url, web={"login_failures_per_address": 3})
    client = client_for(settings, engine)
    for name in ("x1", "x2", "x3"):
        login(client, name, "guess")
    assert login(client, "alice").status_code == 429


def test_old_failures_outside_the_window_do_not_count(settings, engine, people):
    with Session(engine) as session:
        for _ in range(10):
            session.add(LoginEvent(name="alice", address="testclient", outcome="bad-password",
                                   at=utcnow() - timedelta(hours=1)))
        session.commit()
    assert login(client_for(settings, engine), "alice").status_code == 303


def test_a_disabled_user_is_out_at_once_and_cannot_log_in(settings, engine, people):
    client = signed_in(settings, engine, "alice")
    assert client.get("/queue").status_code == 200
    with Session(engine) as session:
        accounts.set_disabled(session, "alice")
        session.commit()
    assert client.get("/queue").status_code == 303
    assert login(client_for(settings, engine), "alice").status_code == 401
    assert outcomes(engine)[-1] == ("alice", "disabled")


def test_a_new_password_ends_the_sessions_opened_with_the_old_one(settings, engine, people):
    client = signed_in(settings, engine, "alice")
    with Session(engine) as session:
        accounts.set_password(session, "alice", "a brand new passphrase")
        session.commit()
    assert client.get("/queue").status_code == 303
    assert login(client_for(settings, engine), "alice", "a brand new passphrase").status_code == 303


def test_logging_out_ends_the_session_and_is_audited(settings, engine, people):
    client = signed_in(settings, engine, "alice")
    response = post(client, "/logout")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert client.get("/queue").status_code == 303
    assert outcomes(engine)[-1] == ("alice", "logout")


def test_a_tampered_or_foreign_cookie_is_no_session(settings, engine, people):
    client = signed_in(settings, engine, "alice")
    good = client.cookies[COOKIE]
    forged = URLSafeTimedSerializer("another-secret-0123456789abcdef0123", salt="consultant-session")
    for bad in (good[:-2] + ("xx" if not good.endswith("xx") else "yy"), forged.dumps({"u": 1, "v": 1, "s": "x", "c": "y"})):
        client.cookies.clear()
        client.cookies.set(COOKIE, bad)
        assert client.get("/queue").status_code == 303


def test_a_session_older_than_session_minutes_is_refused(settings, engine, people):
    class Then(TimestampSigner):
        def get_timestamp(self):
            return super().get_timestamp() - settings.web.session_minutes * 60 - 5

    with Session(engine) as session:
        alice = accounts.get(session, "alice")
        data = {"u": alice.id, "v": alice.session_version, "s": "old", "c": "old"}
    client = client_for(settings, engine)
    client.cookies.set(COOKIE, URLSafeTimedSerializer(SECRET, salt="consultant-session", signer=Then).dumps(data))
    assert client.get("/queue").status_code == 303
    client.cookies.clear()
    client.cookies.set(COOKIE, URLSafeTimedSerializer(SECRET, salt="consultant-session").dumps(data))
    assert client.get("/queue").status_code == 200


def test_a_login_never_redirects_off_the_site(settings, engine, people):
    client = client_for(settings, engine)
    token = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"name": "alice", "password": PASSWORD, "csrf": token,
                                           "next": "//evil.test/x"})
    assert response.headers["location"] == "/"


def test_a_post_without_the_csrf_token_is_refused(settings, engine, people):
    client = signed_in(settings, engine, "ada")
    for url in ("/login", "/logout", "/questions/1/claim", "/questions/1/approve", "/questions/1/reject",
                "/questions/1/save", "/questions/1/release", "/operator/requeue/1", "/operator/retry/1"):
        assert client.post(url, data={"name": "alice", "password": PASSWORD}).status_code == 403, url
        assert client.post(url, data={"csrf": "forged"}).status_code == 403, url
        assert client.post(url, json={"csrf": "forged"}).status_code == 403, url


def test_a_token_from_another_session_is_refused(settings, engine, people, db_url):
    qid = drafted(engine, settings, question_bytes(1))
    alice, bob = signed_in(settings, engine, "alice"), signed_in(settings, engine, "bob")
    response = bob.post(f"/questions/{qid}/claim", data={"csrf": csrf_of(alice.get("/queue").text)})
    assert response.status_code == 403


def test_roles_are_enforced_on_the_server(settings, engine, people):
    qid = drafted(engine, settings, question_bytes(1))
    reviewer, operator, admin = (signed_in(settings, engine, n) for n in ("alice", "olivia", "ada"))
    assert reviewer.get("/operator").status_code == 403
    assert reviewer.get("/metrics").status_code == 403
    assert post(reviewer, f"/operator/requeue/{qid}").status_code == 403
    assert operator.get("/queue").status_code == 403
    assert operator.get("/next").status_code == 403
    assert post(operator, f"/questions/{qid}/claim", page="/operator").status_code == 403
    assert post(operator, f"/questions/{qid}/approve", page="/operator", text="x").status_code == 403
    page = operator.get(f"/questions/{qid}")  # operators may look, not review
    assert page.status_code == 200 and 'id="claim-button"' not in page.text
    assert operator.get("/codes/CPT/99213").status_code == 200
    for url in ("/queue", "/operator", f"/questions/{qid}", "/codes", "/metrics"):
        assert admin.get(url).status_code == 200, url


def test_home_sends_each_role_to_its_page(settings, engine, people):
    assert signed_in(settings, engine, "alice").get("/").headers["location"] == "/queue"
    assert signed_in(settings, engine, "olivia").get("/").headers["location"] == "/operator"


def test_every_page_carries_the_security_headers(settings, engine, people):
    client = signed_in(settings, engine, "ada")
    for url in ("/login", "/queue", "/operator", "/codes", "/healthz", "/static/desk.js"):
        headers = client.get(url).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"


def test_metrics_for_operators_or_a_scraper_with_the_token(db_url, engine, people):
    settings = web_settings(db_url, web={"metrics_token": "scrape-token-123"})
    body = signed_in(settings, engine, "olivia").get("/metrics")
    assert body.status_code == 200 and "consultant_questions" in body.text
    scraper = client_for(settings, engine)
    assert scraper.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"}).status_code == 200
    assert scraper.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 303
    assert "set-cookie" not in scraper.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"}).headers


def test_healthz_is_503_until_a_recent_poll_succeeded(settings, engine):
    client = client_for(settings, engine)
    failing = client.get("/healthz")
    assert failing.status_code == 503 and failing.json()["database"]["ok"] is True
    with Session(engine) as session:
        session.add(ServiceRun(job="poll", ok=True, server_ok=True, started_at=utcnow(), finished_at=utcnow()))
        session.commit()
    healthy = client.get("/healthz")
    assert healthy.status_code == 200 and healthy.json()["status"] == "ok"
    assert "set-cookie" not in healthy.headers
