"""In-process IMAP (pymap, in memory) and SMTP sink (aiosmtpd) servers for `make demo`, loopback only."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import threading
from argparse import Namespace
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from aiosmtpd.controller import Controller
from proxyprotocol.reader import ProxyProtocolReader
from pymap.backend.dict import Config as _DictConfig, Login
from pymap.backend.dict.filter import FilterSet
from pymap.backend.dict.mailbox import MailboxData, MailboxSet
from pymap.concurrent import Subsystem
from pymap.imap import IMAPServer
from pymap.parsing.message import AppendMessage
from pymap.parsing.specials.flag import Flag, Wildcard
from pymap.user import Passwords, UserMetadata
from pysasl.hashing import Cleartext

__all__ = ["DemoServerError", "DemoImapServer", "DemoSmtpSink"]

_log = logging.getLogger(__name__)


class DemoServerError(RuntimeError):
    """A demo server could not start or stop."""


class _Config(_DictConfig):
    """pymap's dict-backend config with a fixed greeting (no slow DNS lookup of the host name)."""

    @property
    def greeting(self) -> bytes:
        return b"CaseConsultant demo IMAP server ready"


class _DemoMailboxData(MailboxData):
    """A dict-backend mailbox that behaves like Dovecot in two ways stock pymap does not.

    It offers \\* in PERMANENTFLAGS, so keywords such as $Consulted persist (pymap drops them
    silently); and SEARCH first syncs the session, so it sees messages delivered since the
    previous command (pymap shows them only from the command after).
    """

    keywords = True

    @property
    def permanent_flags(self) -> frozenset[Flag]:
        flags = super().permanent_flags
        return flags | {Wildcard} if self.keywords else flags

    async def find(self, seq_set, selected):  # noqa: ANN001, ANN201 - as in the base class
        await self.update_selected(selected)
        async for item in super().find(seq_set, selected):
            yield item


class _CoalescingWriter:
    """Turns pymap's many small writes per response into one send at each drain().

    pymap writes a response in pieces (b"* 4 FETCH " then b"(FLAGS ())\\r\\n"), each its own
    send; imapclient's idle_check() reads a non-blocking socket and aborts on half a line.
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._buffer = bytearray()

    def write(self, data: bytes) -> None:
        self._buffer += data

    async def drain(self) -> None:  # pymap drains after each response, then at most closes
        if self._buffer:
            self._writer.write(bytes(self._buffer))
            self._buffer.clear()
        await self._writer.drain()

    def __getattr__(self, name: str) -> object:
        return getattr(self._writer, name)


class DemoImapServer:
    """pymap's in-memory backend served on loopback by a background thread with its own event loop.

    Plain IMAP (no TLS), one user, mailboxes INBOX and Sent; messages live in memory only.
    """

    def __init__(self, username: str, password: str, messages: Iterable[bytes] = (),
                 host: str = "127.0.0.1", port: int = 0, *, keywords: bool = True,
                 start_timeout: float = 10.0) -> None:
        self.username = username
        self.password = password
        self.host = host
        self.port = port
        self.keywords = keywords
        self.start_timeout = start_timeout
        self._initial = [bytes(raw) for raw in messages]
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._config: _Config | None = None
        self._mailboxes: MailboxSet | None = None

    @property
    def running(self) -> bool:
        """True while the server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> DemoImapServer:
        """Start serving; return once the port accepts connections, or raise DemoServerError."""
        if self._thread is not None:
            raise DemoServerError("the demo IMAP server is already started")
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._thread_main, name="demo-imap", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.start_timeout):
            try:
                self.stop(timeout=1.0)
            except DemoServerError:
                self._thread = None  # a stuck daemon thread: give up on it
            raise DemoServerError(f"the demo IMAP server did not start within {self.start_timeout} s")
        if self._error is not None:
            error = self._error
            self._thread.join(self.start_timeout)
            self._thread = None
            raise DemoServerError(f"the demo IMAP server could not start on "
                                  f"{self.host}:{self.port}: {error}") from error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection, stop the loop and join the thread (no-op when not running)."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and stop_event is not None:
            try:
                loop.call_soon_threadsafe(stop_event.set)
            except RuntimeError:  # the loop has already closed
                pass
        thread.join(timeout)
        if thread.is_alive():
            raise DemoServerError(f"the demo IMAP server thread did not stop within {timeout} s")
        self._thread = self._loop = self._stop_event = None
        self._config = self._mailboxes = None

    def append(self, raw: bytes, mailbox: str = "INBOX", flags: Iterable[str] = (),
               timeout: float = 10.0) -> int:
        """Deliver a message while running (IDLE clients are told); return its UID."""
        loop = self._loop
        if not self.running or loop is None:
            raise DemoServerError("the demo IMAP server is not running")
        coro = self._append(bytes(raw), mailbox, flags)
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def __enter__(self) -> DemoImapServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start(), never left unhandled
            if self._ready.is_set():
                _log.exception("demo IMAP server stopped with an error")
            else:
                self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        args = Namespace(debug=False, passlib_cfg=None, proxy_protocol=None,
                         inherited_sockets=None)
        config = _Config(args, host=self.host, port=self.port, demo_data=False,
                         demo_user=self.username, demo_password=self.password,
                         tls_enabled=False, hash_context=Cleartext(),
                         cpu_subsystem=Subsystem.for_asyncio(),
                         subsystem=Subsystem.for_asyncio(), invalid_user_sleep=0.05)
        config.apply_context()  # pymap keeps its concurrency subsystem in a context variable
        login = Login(config)
        hashed = await Passwords(config).hash_password(self.password)
        await login.demo_user_identity.set(UserMetadata(config, self.username, password=hashed))
        mailboxes = MailboxSet()
        await mailboxes.add_mailbox("Sent")
        await mailboxes.set_subscribed("Sent", True)
        for name in ("INBOX", "Sent"):  # mailboxes a client CREATEs stay stock pymap ones
            mbx = await mailboxes.get_mailbox(name)
            mbx.__class__ = _DemoMailboxData
            mbx.keywords = self.keywords
        config.set_cache[self.username] = (mailboxes, FilterSet())
        self._config, self._mailboxes = config, mailboxes
        inbox = await mailboxes.get_mailbox("INBOX")
        for raw in self._initial:
            await inbox.append(AppendMessage(raw, datetime.now(timezone.utc)), recent=True)

        imap_server = IMAPServer(login, config)

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             sock_info: object) -> None:
            try:
                await imap_server(reader, _CoalescingWriter(writer), sock_info)
            except Exception:  # noqa: BLE001 - one broken connection must not end the demo
                _log.exception("demo IMAP connection failed")

        callback = ProxyProtocolReader(config.proxy_protocol).get_callback(connection)
        server = await asyncio.start_server(callback, self.host, self.port)
        try:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop_event.wait()
        finally:
            server.close()
            await server.wait_closed()
            await self._close_connections()

    @staticmethod
    async def _close_connections() -> None:
        """Cancel connection tasks (each says BYE and closes), then let the transports close."""
        current = asyncio.current_task()
        for _ in range(5):
            tasks = [task for task in asyncio.all_tasks() if task is not current]
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(3):
            await asyncio.sleep(0)

    async def _append(self, raw: bytes, mailbox: str, flags: Iterable[str]) -> int:
        assert self._config is not None and self._mailboxes is not None
        self._config.apply_context()
        try:
            mbx = await self._mailboxes.get_mailbox(mailbox)
        except KeyError:
            raise DemoServerError(f"no mailbox named {mailbox!r}") from None
        flag_set = frozenset(Flag(flag.encode("ascii")) for flag in flags)
        message = await mbx.append(AppendMessage(raw, datetime.now(timezone.utc), flag_set),
                                   recent=True)
        return message.uid


class _SinkController(Controller):
    """An aiosmtpd Controller that can listen on port 0 (it learns its port before checking it)."""

    def _trigger_server(self) -> None:
        if self.server is not None and self.server.sockets:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class DemoSmtpSink:
    """An SMTP server on loopback that accepts every message and saves it as an .eml file."""

    def __init__(self, folder: str | os.PathLike[str], host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.folder = Path(folder)
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._count = 0
        self._serial = itertools.count(1)
        self._controller: _SinkController | None = None

    @property
    def count(self) -> int:
        """How many messages were saved since this sink was created."""
        with self._lock:
            return self._count

    def start(self) -> DemoSmtpSink:
        if self._controller is not None:
            raise DemoServerError("the demo SMTP sink is already started")
        self.folder.mkdir(parents=True, exist_ok=True)
        controller = _SinkController(self, hostname=self.host, port=self.port,
                                     ready_timeout=10.0)
        try:
            if self.port:  # aiosmtpd reports a bind error only after its whole ready_timeout
                with socket.socket() as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind((self.host, self.port))
            controller.start()
        except Exception as exc:
            if controller._thread is not None:  # join the thread if it is still serving
                controller.stop(no_assert=True)
            if not controller.loop.is_closed():  # aiosmtpd leaves it open after a bind error
                controller.loop.close()
            raise DemoServerError(f"the demo SMTP sink could not start on "
                                  f"{self.host}:{self.port}: {exc}") from exc
        self.port = controller.port
        self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> DemoSmtpSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def handle_DATA(self, server: object, session: object, envelope) -> str:  # noqa: N802
        """The aiosmtpd handler hook: every message is accepted and saved."""
        self._save(envelope.original_content or b"")
        return "250 OK: saved"

    def _save(self, data: bytes) -> Path:
        """Write one message exactly as received (CRLF line ends) via a temp file and rename."""
        with self._lock:
            serial = next(self._serial)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.folder / f"{stamp}-{serial:04d}.eml"
        partial = path.with_name(f".{path.name}.part")
        partial.write_bytes(data)
        os.replace(partial, path)
        with self._lock:
            self._count += 1
        return path

