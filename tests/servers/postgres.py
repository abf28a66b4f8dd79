"""A throwaway PostgreSQL cluster: initdb and pg_ctl in a temp folder, loopback only, fsync off."""
from __future__ import annotations

import glob
import itertools
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

from . import MissingServer, free_port, is_root, make_shared_dir, remove_dir, tail

PACKAGE = "postgresql"
# Plain identifiers only, so a name never needs quoting in a URL or in SQL.
DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# Durability off: a test cluster is thrown away, and these make every commit cheap.
SETTINGS = """
# Added by tests/servers/postgres.py
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{root}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
"""


def find_bin_dir() -> Path:
    """The newest installed /usr/lib/postgresql/N/bin, as Debian lays out several versions."""
    candidates = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    if not candidates:
        found = shutil.which("initdb") or shutil.which("pg_ctl")
        if found is None:
            raise MissingServer("initdb", PACKAGE)
        return Path(found).parent
    return max(candidates, key=lambda p: _version(p.parent.name))


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)) or (0,)


class PostgresCluster:
    """One PostgreSQL cluster in its own temp folder, superuser `postgres`, trust auth."""

    def __init__(self, root: Path | None = None):
        self.bin_dir = find_bin_dir()
        self.host = "127.0.0.1"
        self.port = free_port()
        self.root = Path(root) if root else make_shared_dir("consultant-postgres-")
        self.data_dir = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self._numbers = itertools.count(1)
        self._initialised = False
        if is_root():
            # PostgreSQL refuses to run as root; its files must belong to the user it runs as.
            shutil.chown(self.root, "postgres")

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: int = 30) -> None:
        """Create the cluster on first use, then start it; raise with the log tail on failure."""
        if not self._initialised:
            self._initdb()
        if self.running:
            return
        result = self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path),
                           "-w", "-t", str(timeout), "start")
        if result.returncode != 0:
            raise RuntimeError(
                f"PostgreSQL did not start on {self.host}:{self.port}: {result.stdout}"
                f"{result.stderr}\n--- {self.log_path} (tail) ---\n{tail(self.log_path)}"
            )

    def stop(self) -> None:
        """Stop the server at once (fast mode: open sessions are cut off)."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and delete its folder."""
        self.stop()
        remove_dir(self.root)

    @property
    def running(self) -> bool:
        if not self._initialised:
            return False
        return self._run("pg_ctl", "-D", str(self.data_dir), "status").returncode == 0

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- databases -------------------------------------------------------------------------

    def url(self, name: str = "postgres") -> str:
        """The SQLAlchemy URL (psycopg 3 driver) of a database in this cluster."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{name}"

    def dsn(self, name: str = "postgres") -> str:
        """A libpq connection string, for psycopg.connect() without SQLAlchemy."""
        return f"host={self.host} port={self.port} user=postgres dbname={name}"

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """Create a database (a unique name when None), optionally as a copy of a template.

        PostgreSQL copies a template only while nobody is connected to it: dispose of engines
        that used the template first. Returns the SQLAlchemy URL.
        """
        name = name or f"test_{next(self._numbers)}_{secrets.token_hex(4)}"
        _check_name(name)
        statement = f'CREATE DATABASE "{name}"'
        if template is not None:
            _check_name(template)
            statement += f' TEMPLATE "{template}"'
        self.execute(statement)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists, disconnecting anyone still connected to it."""
        _check_name(name)
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def execute(self, statement: str) -> None:
        """Run one statement as superuser in the `postgres` database, outside a transaction."""
        import psycopg  # here, so importing this module costs nothing for tests without PG

        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as connection:
            connection.execute(statement)

    # -- internals -------------------------------------------------------------------------

    def _initdb(self) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            # --no-sync: nothing here needs to survive a power cut. C locale: no dependence on
            # the machine's locales, and the same sort order everywhere.
            result = self._run("initdb", "-D", str(self.data_dir), "-A", "trust", "-U",
                               "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
            if result.returncode != 0:
                raise RuntimeError(f"initdb failed:\n{result.stdout}{result.stderr}")
            with open(self.data_dir / "postgresql.conf", "a") as conf:
                conf.write(SETTINGS.format(port=self.port, root=self.root))
        self._initialised = True

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / program), *args]
        if is_root():
            command = ["runuser", "-u", "postgres", "--", *command]
        # A clean environment: PGDATA, PGPORT and friends from the caller must not leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return subprocess.run(command, capture_output=True, text=True, cwd=self.root, env=env,
                              timeout=120)


def _check_name(name: str) -> None:
    if not DATABASE_NAME.fullmatch(name):
        raise ValueError(f"database name {name!r} must match {DATABASE_NAME.pattern}")
