"""Desk users (argon2 password hashes, roles) and the login audit that also drives throttling."""
from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta

from sqlalchemy import Index, func, select
from sqlmodel import Field, Session, SQLModel

from .errors import ConsultantError, NotFound
from .models import utcnow

ROLES = ("reviewer", "operator", "admin")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
NAME = re.compile(r"[a-z][a-z0-9._-]{1,39}")


@functools.cache
def _hasher():
    """argon2's PasswordHasher, imported on first use: the worker imports this module (for the
    login table's retention) and never hashes, so it does not pay for loading argon2."""
    from argon2 import PasswordHasher

    return PasswordHasher()


@functools.cache
def dummy_hash() -> str:
    """Verifying against this when the name is unknown costs the same time as a real check, so the
    answer time does not tell an attacker which names exist. Made on first use, not at import: the
    worker imports this module (for the login table's retention) and must not pay argon2's 64 MiB."""
    return _hasher().hash("not a password of anyone")


class User(SQLModel, table=True):
    """A person who signs in to the desk. `session_version` goes up when the password changes or
    the account is disabled, which ends every session issued before."""

    __tablename__ = "desk_user"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=40, unique=True)
    role: str = Field(max_length=10)
    password_hash: str = Field(max_length=200)
    disabled: bool = False
    session_version: int = 1
    created_at: datetime = Field(default_factory=utcnow)
    password_changed_at: datetime = Field(default_factory=utcnow)
    last_login_at: datetime | None = None


class LoginEvent(SQLModel, table=True):
    """One sign-in attempt or sign-out: the audit trail of logins, and what throttling counts."""

    __tablename__ = "login_event"
    __table_args__ = (Index("ix_login_event_name_at", "name", "at"),
                      Index("ix_login_event_address_at", "address", "at"))

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    name: str = Field(max_length=40)  # as typed (cut to 40), so attempts on unknown names count too
    address: str = Field(max_length=64)  # the client's IP address
    outcome: str = Field(max_length=20)  # ok, bad-password, unknown-user, disabled, throttled, logout


class AccountError(ConsultantError):
    """A user command that cannot be done: bad name, unknown role, weak password."""


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must be at least {MIN_PASSWORD} characters long")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password must be at most {MAX_PASSWORD} characters long")
    return password


def get(session: Session, name: str) -> User:
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


def add(session: Session, name: str, role: str, password: str) -> User:
    """Create a user; the caller commits."""
    if not NAME.fullmatch(name):
        raise AccountError(f"{name!r} is not a user name: 2-40 of a-z, 0-9, '.', '_', '-', starting with a letter")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if session.execute(select(User.id).where(User.name == name)).first():
        raise AccountError(f"a user named {name!r} exists already")
    user = User(name=name, role=role, password_hash=_hasher().hash(check_password(password)))
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, name: str, password: str) -> User:
    """A new password; every session of the user ends. The caller commits."""
    user = get(session, name)
    user.password_hash = _hasher().hash(check_password(password))
    user.password_changed_at = utcnow()
    user.session_version += 1
    session.flush()
    return user


def set_disabled(session: Session, name: str, disabled: bool = True) -> User:
    """Disable (or enable) a user; disabling ends every session at once. The caller commits."""
    user = get(session, name)
    user.disabled = disabled
    user.session_version += 1
    session.flush()
    return user


def users(session: Session) -> list[User]:
    return list(session.execute(select(User).order_by(User.name)).scalars())


def failures_since(session: Session, since: datetime, name: str | None = None,
                   address: str | None = None) -> int:
    """Failed attempts since `since` for one name or one address (a success does not reset them:
    an attacker who knows one password must not get unlimited tries at the others)."""
    query = select(func.count(LoginEvent.id)).where(
        LoginEvent.at >= since, LoginEvent.outcome.in_(("bad-password", "unknown-user", "disabled")))
    if name is not None:
        query = query.where(LoginEvent.name == name)
    if address is not None:
        query = query.where(LoginEvent.address == address)
    return session.execute(query).scalar_one()


def record(session: Session, name: str, address: str, outcome: str) -> None:
    session.add(LoginEvent(name=name[:40], address=address[:64], outcome=outcome))
    session.flush()


def authenticate(session: Session, name: str, password: str, address: str, window: timedelta,
                 per_name: int, per_address: int) -> tuple[User | None, str]:
    """Check a login and record it. Returns (user, "ok") or (None, outcome). Too many recent failures
    for the name or from the address refuse even a right password ("throttled"). The caller commits."""
    name = name.strip().lower()[:40]
    since = utcnow() - window
    if (failures_since(session, since, name=name) >= per_name
            or failures_since(session, since, address=address) >= per_address):
        record(session, name, address, "throttled")
        return None, "throttled"
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        _hasher().verify(user.password_hash if user else dummy_hash(), password[:MAX_PASSWORD])
        good = user is not None
    except (VerificationError, InvalidHashError):
        good = False
    outcome = "ok" if good and not user.disabled else (
        "unknown-user" if user is None else "disabled" if user.disabled and good else "bad-password")
    record(session, name, address, outcome)
    if outcome != "ok":
        return None, outcome
    if _hasher().check_needs_rehash(user.password_hash):
        user.password_hash = _hasher().hash(password)
    user.last_login_at = utcnow()
    session.flush()
    return user, "ok"
