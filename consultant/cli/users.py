"""`consultant users ...`: desk accounts (add, disable, enable, passwd, list); passwords from a prompt or stdin."""
from __future__ import annotations

import sys

import typer
from sqlmodel import Session

from ..errors import ConsultantError
from . import STATE, app, console

users_app = typer.Typer(help="Manage who can sign in to the review desk.", no_args_is_help=True)
app.add_typer(users_app, name="users")


def read_password() -> str:
    """Typed twice at a terminal (never echoed), or the first line of standard input when piped."""
    if sys.stdin is not None and sys.stdin.isatty():
        return typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line:
        raise ConsultantError("no password: type it at the prompt or pipe it on standard input")
    return line.rstrip("\r\n")


@users_app.command("add")
def add(name: str, role: str = typer.Option(..., "--role", help="reviewer, operator or admin")):
    """Create a user; the password comes from a prompt or standard input."""
    from .. import accounts

    with Session(STATE.require_schema()) as session:
        accounts.add(session, name, role, read_password())
        session.commit()
    console.print(f"user {name} added as {role}")


@users_app.command("passwd")
def passwd(name: str):
    """Set a new password; the user's open sessions end."""
    from .. import accounts

    with Session(STATE.require_schema()) as session:
        accounts.set_password(session, name, read_password())
        session.commit()
    console.print(f"password of {name} changed; their sessions have ended")


@users_app.command("disable")
def disable(name: str):
    """Stop a user from signing in; their open sessions end at once."""
    _set_disabled(name, True)


@users_app.command("enable")
def enable(name: str):
    """Let a disabled user sign in again."""
    _set_disabled(name, False)


def _set_disabled(name: str, disabled: bool) -> None:
    from .. import accounts

    with Session(STATE.require_schema()) as session:
        accounts.set_disabled(session, name, disabled)
        session.commit()
    console.print(f"user {name} {'disabled' if disabled else 'enabled'}")


@users_app.command("list")
def list_users():
    """Every user with role, state and last login."""
    from .. import accounts

    with Session(STATE.require_schema()) as session:
        rows = [(u.name, u.role, "disabled" if u.disabled else "active",
                 f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "never") for u in accounts.users(session)]
    from rich.table import Table

    table = Table("name", "role", "state", "last login (UTC)")
    for row in rows:
        table.add_row(*row)
    console.print(table)
