"""Pytest plugin: real Dovecot, PostgreSQL and SMTP servers, started lazily once per session."""
from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from . import MissingServer
from .dovecot import Dovecot, ImapUser
from .postgres import PostgresCluster
from .smtp import SmtpServer

Server = TypeVar("Server", Dovecot, PostgresCluster, SmtpServer)


def _session_server(build: Callable[[], Server]) -> Iterator[Server]:
    # A missing binary or a failed start FAILS the tests that need the server, never skips
    # them: a suite that silently skips its integration tests would pass on a broken machine.
    # pytest.fail is called outside the except blocks so the report is the message alone.
    problem = None
    try:
        server = build()
    except MissingServer as error:
        problem = str(error)
    else:
        try:
            server.start()
        except Exception as error:
            server.close()
            problem = f"{type(server).__name__} failed to start: {error}"
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """The session's Dovecot; give each test its own account with `imap_user`."""
    yield from _session_server(Dovecot)


@pytest.fixture
def imap_user(dovecot: Dovecot) -> ImapUser:
    """A fresh IMAP account (empty INBOX and Sent) on the session's Dovecot."""
    # A test that stopped the server and failed before starting it again must not break the
    # tests after it.
    dovecot.start()
    return dovecot.add_user()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL cluster; create a database per test with create_database()."""
    yield from _session_server(PostgresCluster)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    """The session's SMTP server: STARTTLS and AUTH offered (not required); use `smtp` in tests."""
    yield from _session_server(
        lambda: SmtpServer(tls=True, username="consultant", password=secrets.token_urlsafe(12))
    )


@pytest.fixture
def smtp(smtp_server: SmtpServer) -> SmtpServer:
    """The session's SMTP server, running, with no messages and no pending failures."""
    smtp_server.start()
    smtp_server.clear()
    return smtp_server
