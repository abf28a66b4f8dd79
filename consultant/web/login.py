"""Log in and out: argon2 check, throttling per account and per address, an audit row for each try."""
from __future__ import annotations

import unicodedata
from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from sqlmodel import Session

from .. import accounts
from ..logs import vet
from .session import desk, fresh, replace_session

router = APIRouter()
REFUSALS = {
    "throttled": "Too many failed attempts. Wait a few minutes and try again.",
}
MAX_NEXT = 2000
WRONG = "The name or the password is wrong, or the account is disabled."


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never '//evil.test', 'https://...', a backslash or 'javascript:'.
    Control, format and space characters other than ' ' refuse the whole target: browsers drop tabs
    and newlines inside a URL ('/<TAB>/evil.test' is '//evil.test' to them), and CR LF must never
    reach a header. Back to the login or logout page means home."""
    if not target or len(target) > MAX_NEXT or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(unicodedata.category(ch)[0] in "CZ" and ch != " " for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return "/"
    return target


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login")
def login_form(request: Request, next: str = "/"):
    return request.app.state.pages.render(request, "login.html", title="Sign in", next=_safe_next(next),
                                          name="")


@router.post("/login")
def login(request: Request, name: str = Form(""), password: str = Form(""), next: str = Form("/")):
    app = desk(request)
    web = app.settings.web
    with Session(app.engine) as session:
        user, outcome = accounts.authenticate(
            session, name, password, client_address(request), timedelta(seconds=web.login_window),
            web.login_failures_per_user, web.login_failures_per_address)
        session.commit()
        if user is not None:
            replace_session(request, fresh(user))  # a new session id and CSRF token at every login
    vet.info("login %s: %s", outcome, name.strip().lower()[:40])
    if user is None:
        return request.app.state.pages.render(
            request, "login.html", 429 if outcome == "throttled" else 401, title="Sign in",
            error=REFUSALS.get(outcome, WRONG), next=_safe_next(next), name=name[:40])
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request):
    data = request.state.session
    if data.get("u"):
        app = desk(request)
        with Session(app.engine) as session:
            user = session.get(accounts.User, data["u"])
            if user is not None and user.session_version == data.get("v"):
                # The cookie is signed, not stored: ending the session on the server means moving the
                # user's session version on, so a copy of this cookie replayed later is refused.
                # That signs the user out in every browser, which is the safe side to err on.
                user.session_version += 1
                accounts.record(session, user.name, client_address(request), "logout")
                session.commit()
    replace_session(request, fresh())
    return RedirectResponse("/login?msg=loggedout", status_code=303)
