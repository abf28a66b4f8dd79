"""Signed session cookies, the signed-in user on every request, and role checks."""
from __future__ import annotations

import secrets
import threading
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import Depends, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ..accounts import User
from ..config import Settings
from ..errors import ConfigError
from ..lookup import Lookup

COOKIE = "consultant_session"
MIN_SECRET = 32


class NotLoggedIn(Exception):
    """No valid session: pages redirect to the login form."""


class Forbidden(Exception):
    """Signed in, but the role does not allow this."""


@dataclass(frozen=True)
class Who:
    id: int
    name: str
    role: str

    def can(self, *roles: str) -> bool:
        return self.role == "admin" or self.role in roles


class Desk:
    """What every request shares: settings, the engine, the cookie signer."""

    def __init__(self, settings: Settings, engine: Engine):
        secret = settings.web.secret()
        if len(secret) < MIN_SECRET:
            raise ConfigError(f"web.secret_key: set CONSULTANT_WEB__SECRET_KEY (or web.secret_key_file) to a "
                              f"random value of at least {MIN_SECRET} characters, e.g. `openssl rand -hex 32`")
        self.settings, self.engine = settings, engine
        self.reader = engine.execution_options(readonly=True)  # SQLite: plain BEGIN, no write lock
        self.signer = URLSafeTimedSerializer(secret, salt="consultant-session")
        self.max_age = settings.web.session_minutes * 60
        self._lookup: Lookup | None = None
        self._lookup_lock = threading.Lock()

    @contextmanager
    def lookup(self):
        """One shared code Lookup: building its index reads every code, too slow for each request.
        Requests take turns; its session is closed after each use so no snapshot stays open."""
        with self._lookup_lock:
            if self._lookup is None:
                self._lookup = Lookup(Session(self.reader))
            else:
                self._lookup.refresh()
            try:
                yield self._lookup
            finally:
                self._lookup.session.close()

    def read(self, request: Request) -> dict:
        """The session in the cookie, or a fresh anonymous one (which only carries a CSRF token)."""
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                data = self.signer.loads(raw, max_age=self.max_age)
                if isinstance(data, dict) and isinstance(data.get("c"), str):
                    return data
            except BadSignature:  # includes an expired signature
                pass
        request.state.new_session = True
        return fresh()

    def write(self, response, data: dict, https: bool) -> None:
        response.set_cookie(COOKIE, self.signer.dumps(data), max_age=self.max_age, httponly=True,
                            samesite="lax", secure=https, path="/")


def fresh(user: User | None = None) -> dict:
    """A new session: new id and new CSRF token (so logging in rotates both)."""
    data = {"s": secrets.token_urlsafe(16), "c": secrets.token_urlsafe(32)}
    if user is not None:
        data.update(u=user.id, v=user.session_version)
    return data


def desk(request: Request) -> Desk:
    return request.app.state.desk


def replace_session(request: Request, data: dict) -> None:
    """Swap the request's session; the middleware writes the cookie."""
    request.state.session = data
    request.state.new_session = True


def current_user(request: Request) -> Who:
    """The signed-in user, checked against the database on every request: a disabled user, or one
    whose password changed since the session began, is out at once."""
    data = request.state.session
    uid = data.get("u")
    if not uid:
        raise NotLoggedIn()
    with Session(desk(request).reader) as session:
        user = session.get(User, uid)
        ok = user is not None and not user.disabled and user.session_version == data.get("v")
        who = Who(user.id, user.name, user.role) if ok else None
    if who is None:
        replace_session(request, fresh())
        raise NotLoggedIn()
    request.state.user = who
    return who


def role(*roles: str):
    """A dependency that lets in the signed-in users with one of `roles` (admins always)."""

    def check(who: Who = Depends(current_user)) -> Who:
        if not who.can(*roles):
            raise Forbidden()
        return who

    check.roles = roles  # what the route requires, for tests that enumerate the routes by role
    return check


REVIEWER = role("reviewer")
OPERATOR = role("operator")
ANYONE = role("reviewer", "operator")
