"""Real servers for tests (Dovecot, PostgreSQL, aiosmtpd), plus the helpers they share."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path


class MissingServer(RuntimeError):
    """A server binary is not installed; says which Debian package provides it."""

    def __init__(self, program: str, package: str):
        self.program, self.package = program, package
        super().__init__(
            f"{program} is not installed: run `apt-get install -y {package}` "
            "(`make test` installs it on a fresh machine)"
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    # Racy in theory (another process could take it before the server binds), but servers here
    # keep their port for the whole session, so a clash would show at once as a failed start.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_shared_dir(prefix: str) -> Path:
    """A fresh temp folder that unprivileged server processes can traverse."""
    # mkdtemp (and pytest's tmp_path_factory) make 0700 folders; Dovecot's auth process runs as
    # `dovecot` and PostgreSQL as `postgres`, so they could not reach their own files.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def find_program(name: str, package: str, extra_dirs: tuple[str, ...] = ("/usr/sbin",)) -> str:
    """The path of a server program, looking also where a non-root PATH does not."""
    found = shutil.which(name) or next(
        (str(Path(d, name)) for d in extra_dirs if os.access(Path(d, name), os.X_OK)), None
    )
    if found is None:
        raise MissingServer(name, package)
    return found


def wait_until(check, timeout: float, interval: float = 0.02) -> bool:
    """Call check() until it returns true or the timeout passes; return its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def is_root() -> bool:
    return os.geteuid() == 0
