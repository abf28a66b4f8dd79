"""The `consultant` command: Typer app, shared context, and error handling that never shows a traceback."""
from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path
from dataclasses import dataclass, field
from functools import cached_property

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import OperationalError

from .. import config as config_module
from ..errors import ConsultantError
from ..logs import scrub
from ..logs import setup as setup_logging

app = typer.Typer(help="CaseConsultant: email answers to medical coding questions, reviewed by people.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
codes_app = typer.Typer(help="Look up and load code data.", no_args_is_help=True)
config_app = typer.Typer(help="Check the configuration.", no_args_is_help=True)
app.add_typer(codes_app, name="codes")
app.add_typer(config_app, name="config")

# Markup is off by default: subjects, names and codes come from hostile mail, and a stray "[/x]"
# would be read as a style tag. Styled lines pass markup=True and escape() their data.
console = Console(highlight=False, markup=False)
err_console = Console(stderr=True, highlight=False, markup=False)


@dataclass
class Context:
    config_path: str | None = None
    _engine: object = field(default=None, repr=False)

    @cached_property
    def settings(self) -> config_module.Settings:
        settings = config_module.load(self.config_path)
        setup_logging(settings.log.level, settings.log.file)
        return settings

    @property
    def engine(self):
        if self._engine is None:
            from ..db import make_engine
            self._engine = make_engine(self.settings.database.url)
            atexit.register(self._engine.dispose)  # connections closed properly (see leave)
        return self._engine

    def require_schema(self):
        from ..db import is_initialised
        if not is_initialised(self.engine):
            raise ConsultantError(f"the database {self.settings.database.url!r} has no schema yet: "
                                  "run `consultant init` first")
        return self.engine


STATE = Context()


@app.callback()
def _root(config: str = typer.Option(None, "--config", "-c", envvar="CONSULTANT_CONFIG",
                                     help="Config file (TOML); default: built-in defaults.")):
    STATE.config_path = config
    STATE.__dict__.pop("settings", None)
    STATE._engine = None


def main() -> None:
    """Entry point: user errors print one sentence; anything else prints a short note, no traceback."""
    try:
        _main()
    except SystemExit as exc:
        leave(exc.code)
    leave(0)


def leave(code) -> None:
    """Exit with `code` once the exit handlers have run (log files flushed, spare processes told to
    end), without the interpreter's own tear-down: freeing every object one by one (the code index,
    the mapped models) took about 0.3 s after each poll. Nothing is left to write by then: the
    commands commit and close what they open, and threads that are not daemons are waited for."""
    if isinstance(code, str):  # sys.exit("message")
        print(code, file=sys.stderr)
        code = 1
    code = 0 if code is None else int(code)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:  # not CPython: the ordinary exit
        sys.exit(code)
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`| head`), or already closed
            pass
    os._exit(code)


def _main() -> None:
    try:
        app(standalone_mode=True)
    except ConsultantError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, soft_wrap=True)
        sys.exit(exc.exit_code)
    except OperationalError as exc:
        err_console.print(f"[red]error:[/red] database unreachable: {escape(str(exc.orig))}", markup=True,
                          soft_wrap=True)
        sys.exit(3)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("CONSULTANT_DEBUG"):
            raise
        report = _crash_report()
        err_console.print(f"[red]internal error:[/red] {type(exc).__name__}: {escape(str(exc))}\n"
                          f"This is a bug. The details are in {escape(report)}; please include it in a bug "
                          "report.", markup=True, soft_wrap=True)
        sys.exit(1)


def _crash_report() -> str:
    """Write the traceback to a file under var/ (never to the terminal) and return its path."""
    import tempfile
    import time
    import traceback

    folder = Path(os.environ.get("CONSULTANT_PATHS__VAR", "var"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir())
    path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    path.write_text(scrub(traceback.format_exc()))  # exception text may echo message content
    return str(path)


from . import admin, codes, codes_import, codes_search, mail, review, review_queue, stats, users, web  # noqa: E402,F401  (register the commands)
