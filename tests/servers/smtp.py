"""A real aiosmtpd server on loopback that records what it accepts and can be told to fail."""
from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from . import free_port, make_shared_dir, remove_dir
from .tls import TlsFiles, make_certificates

COMMANDS = ("CONNECT", "MAIL", "RCPT", "DATA")  # CONNECT: the greeting
OK = "250 2.0.0 OK"
DROP = "drop"  # a queued "failure" that closes the connection instead of replying
ACCEPTED = "250 2.0.0 Message accepted for delivery"


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted message: envelope, the bytes exactly as received, and the parsed form."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    tls: bool  # the session was encrypted (STARTTLS, or implicit TLS from the first byte)
    login: str | None  # the AUTH user name, None when the client did not authenticate


class _Handler:
    """aiosmtpd handler: each handle_<VERB> returns the reply, so a failure is one return."""

    def __init__(self, owner: SmtpServer):
        self.owner = owner

    @staticmethod
    def _fail(server, failure: str) -> str:
        if failure == DROP:
            # Close without a reply, as a crashing or overloaded server does mid-transaction.
            # aiosmtpd still tries to write a reply; it goes nowhere.
            server.transport.close()
            return "421 4.3.0 closing"
        return failure

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if failure := self.owner._take_failure("MAIL"):
            return self._fail(server, failure)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return OK

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if failure := self.owner._take_failure("RCPT"):
            return self._fail(server, failure)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return OK

    async def handle_DATA(self, server, session, envelope):
        await self.owner._gate()
        if failure := self.owner._take_failure("DATA"):
            return self._fail(server, failure)
        raw = envelope.original_content
        login = session.auth_data.login.decode() if session.authenticated else None
        self.owner._record(ReceivedMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw,
            message=email.message_from_bytes(raw, policy=email.policy.default),
            tls=session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            login=login,
        ))
        return ACCEPTED


class _Session(SMTP):
    """aiosmtpd's SMTP session, except that a queued CONNECT failure replaces the 220 greeting
    (e.g. 421: the server is too busy or shutting down) and the connection is closed."""

    def __init__(self, owner: SmtpServer, *args, **kwargs):
        self.owner = owner
        super().__init__(*args, **kwargs)

    async def _handle_client(self) -> None:
        if failure := self.owner._take_failure("CONNECT"):
            if failure != DROP:
                await self.push(failure)
            self.transport.close()
            return
        await super()._handle_client()


class _CountingController(Controller):
    """A Controller that counts the connections it accepts (aiosmtpd builds one SMTP per connection)."""

    def __init__(self, owner: SmtpServer, *args, **kwargs):
        self.owner = owner
        super().__init__(*args, **kwargs)

    def factory(self):
        with self.owner._changed:
            self.owner.connections += 1
        return _Session(self.owner, self.handler, **self.SMTP_kwargs)


class SmtpServer:
    """An aiosmtpd Controller on 127.0.0.1; stop() and start() keep the port ("SMTP down").

    With tls=True it offers STARTTLS (cafile verifies it), or with implicit_tls=True it speaks TLS
    from the first byte (SMTPS, what smtplib.SMTP_SSL expects); with username and password it offers
    AUTH PLAIN and LOGIN over TLS. Neither is required unless require_tls / require_auth.
    `connections` counts the connections accepted since the last clear().
    """

    def __init__(self, *, tls: bool = False, username: str | None = None,
                 password: str | None = None, require_tls: bool = False,
                 require_auth: bool = False, tls_dir: Path | None = None,
                 implicit_tls: bool = False):
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        if require_auth and username is None:
            raise ValueError("require_auth needs a username and password")
        if (username or require_tls) and not tls:
            raise ValueError("AUTH and require_tls need tls=True (AUTH is only offered over TLS)")
        if implicit_tls and not tls:
            raise ValueError("implicit_tls needs tls=True (for the certificates)")
        if implicit_tls and require_tls:
            raise ValueError("require_tls is about STARTTLS; an implicit-TLS server is always encrypted")
        self.implicit_tls = implicit_tls
        self.host = "127.0.0.1"
        self.port = free_port()
        self.username, self.password = username, password
        # Certificates go in a folder of our own unless the caller shares one (e.g. Dovecot's).
        self._own_dir = make_shared_dir("consultant-smtp-") if tls and tls_dir is None else None
        self.tls_files: TlsFiles | None = (
            make_certificates(tls_dir or self._own_dir) if tls else None
        )
        self.cafile = self.tls_files.cafile if self.tls_files else None
        self.require_tls, self.require_auth = require_tls, require_auth
        self.messages: list[ReceivedMessage] = []
        self.connections = 0
        self._hold: tuple[int, float] | None = None
        self._failures: dict[str, deque[str]] = {command: deque() for command in COMMANDS}
        # The handler runs in the controller's thread; tests read and configure from theirs.
        self._changed = threading.Condition()
        self._controller: Controller | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Listen again on the same port; returns once the server answers."""
        if self._controller is not None:
            return
        options = {}
        if self.tls_files and self.implicit_tls:
            options.update(ssl_context=self.tls_files.server_context())
        elif self.tls_files:
            options.update(tls_context=self.tls_files.server_context(),
                           require_starttls=self.require_tls)
        if self.username is not None:
            # aiosmtpd counts only STARTTLS as TLS for AUTH; an implicit-TLS session is encrypted anyway.
            options.update(authenticator=self._authenticate, auth_require_tls=not self.implicit_tls,
                           auth_required=self.require_auth)
        # A Controller's event loop is closed by stop(), so every start needs a new one.
        # server_hostname spares a DNS lookup (socket.getfqdn) on every connection.
        controller = _CountingController(self, _Handler(self), hostname=self.host, port=self.port,
                                         server_hostname="smtp.example.test", **options)
        controller.start()
        with self._changed:
            self.connections = 0  # not the connection aiosmtpd makes to check that it started
        self._controller = controller

    def stop(self) -> None:
        """Stop listening: connections are refused until start()."""
        if self._controller is not None:
            controller, self._controller = self._controller, None
            controller.stop()

    def close(self) -> None:
        """Stop the server and delete its certificate folder, if it made one."""
        self.stop()
        if self._own_dir is not None:
            remove_dir(self._own_dir)

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- what tests use --------------------------------------------------------------------

    def fail_next(self, command: str, code: int, text: str = "Test failure",
                  times: int = 1) -> None:
        """Answer the next `times` MAIL, RCPT or DATA commands, or greet the next `times`
        connections (CONNECT), with `code text` (e.g. 451, 550; 421 at CONNECT)."""
        command = command.upper()
        if command not in COMMANDS:
            raise ValueError(f"command must be one of {COMMANDS}, not {command!r}")
        if not 400 <= code <= 599:
            raise ValueError(f"a failure code is 4xx or 5xx, not {code}")
        with self._changed:
            self._failures[command].extend([f"{code} {text}"] * times)

    def drop_next(self, command: str, times: int = 1) -> None:
        """Close the connection, with no reply, on the next `times` MAIL, RCPT or DATA commands
        (DATA: after the whole message was received), or at CONNECT before the greeting."""
        command = command.upper()
        if command not in COMMANDS:
            raise ValueError(f"command must be one of {COMMANDS}, not {command!r}")
        with self._changed:
            self._failures[command].extend([DROP] * times)

    def hold_data_until(self, connections: int, timeout: float = 10.0) -> None:
        """Answer no DATA until `connections` connections were made since the last clear(): lets a
        test make sure that several clients overlap. After `timeout` seconds it answers anyway, so
        a test that waits in vain fails on its own assertions instead of hanging."""
        with self._changed:
            self._hold = (connections, timeout)

    def clear(self) -> None:
        """Forget received messages, pending failures, the connection count and any hold."""
        with self._changed:
            self.connections = 0
            self._hold = None
            self.messages.clear()
            for queue in self._failures.values():
                queue.clear()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Wait until at least `count` messages were accepted; return them all."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(
                    f"expected {count} messages within {timeout} s, got {len(self.messages)}"
                )
            return list(self.messages)

    # -- internals -------------------------------------------------------------------------

    async def _gate(self) -> None:
        with self._changed:
            hold = self._hold
        if hold is None:
            return
        wanted, timeout = hold
        deadline = time.monotonic() + timeout
        while self.connections < wanted and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the other connections are served meanwhile

    def _take_failure(self, command: str) -> str | None:
        with self._changed:
            queue = self._failures[command]
            return queue.popleft() if queue else None

    def _record(self, message: ReceivedMessage) -> None:
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        good = (isinstance(auth_data, LoginPassword)
                and auth_data.login == self.username.encode()
                and auth_data.password == self.password.encode())
        # auth_data is what the session keeps: handle_DATA reads the login name from it.
        return AuthResult(success=good, handled=False, auth_data=auth_data if good else None)
