"""Errors a user can be shown: each carries a sentence, never a traceback."""


class ConsultantError(Exception):
    """Something the user can act on; the CLI prints the message and exits non-zero."""

    exit_code = 1


class ConfigError(ConsultantError):
    """A bad setting: the message names the key and what is wrong."""

    exit_code = 2


class NotFound(ConsultantError):
    """No such question, code or file."""


class Outage(ConsultantError):
    """A server we depend on (database, IMAP, SMTP) cannot be reached: change no state, retry later."""
