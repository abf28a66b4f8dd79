"""Settings: defaults < TOML file < CONSULTANT_<SECTION>__<KEY> environment < *_FILE secrets."""
from __future__ import annotations

import ipaddress
import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError

ENV_PREFIX = "CONSULTANT_"
SECRET_KEYS = {("imap", "password"), ("smtp", "password"), ("web", "secret_key"), ("web", "metrics_token")}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: Any) -> float:
    """'90s', '15m', '24h', '2d' or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value))
        if not match:
            raise ValueError("must be a duration such as 30s, 15m, 24h or 2d")
        seconds = float(match[1]) * _UNITS[match[2] or "s"]
    if seconds <= 0:
        raise ValueError("must be more than zero")
    return seconds


Duration = Annotated[float, BeforeValidator(_duration)]


def _address(value: Any) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"[^@\s<>\"]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]+", text):
        raise ValueError(f"{text!r} is not an email address")
    return text.lower()


Address = Annotated[str, BeforeValidator(_address)]


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Service(Section):
    address: Address = "ask@caseconsultant.test"
    name: str = "CaseConsultant"
    own_addresses: list[Address] = []
    loop_header: str = "X-CaseConsultant-Loop"


class Database(Section):
    url: str = "sqlite:///var/consultant.db"


class MailServer(Section):
    host: str = "127.0.0.1"
    port: int = 993
    security: Literal["tls", "starttls", "plain"] = "tls"
    username: str = ""
    password: str = ""
    password_file: str = ""
    cafile: str = ""
    timeout: Duration = 30.0

    @model_validator(mode="after")
    def _plain_only_on_loopback(self):
        if self.security == "plain" and not is_loopback(self.host):
            raise ValueError(f"security = 'plain' is only allowed on loopback, not on {self.host!r}: "
                             "use 'tls' or 'starttls'")
        return self

    def secret(self) -> str:
        if self.password_file:
            try:
                return Path(self.password_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"password_file {self.password_file!r} cannot be read: {exc.strerror}")
        return self.password


class Imap(MailServer):
    account: str = ""
    mailbox: str = "INBOX"
    after_fetch: Literal["none", "flag", "move"] = "none"
    flag: str = "$CaseConsultant"
    move_to: str = "Processed"
    batch_size: int = 200
    idle: bool = True

    def account_name(self) -> str:
        return self.account or f"{self.username}@{self.host}"


class Smtp(MailServer):
    port: int = 465
    sent_folder: str = ""


class Worker(Section):
    poll_every: Duration = 60.0
    send_every: Duration = 5.0
    sweep_every: Duration = 60.0
    batch_size: int = 200
    lease: Duration = 120.0
    processes: int = Field(default=-1, ge=-1)


class Limits(Section):
    # Each is a count or a size: zero or less would refuse every message (or retry none).
    max_message_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    max_parts: int = Field(default=200, ge=1)
    max_depth: int = Field(default=20, ge=1)
    max_header_bytes: int = Field(default=64 * 1024, ge=1)
    max_lines: int = Field(default=1_000_000, ge=1)
    max_body_chars: int = Field(default=1_000_000, ge=1)
    max_codes: int = Field(default=200, ge=1)
    max_attempts: int = Field(default=3, ge=1)

    def reading(self) -> dict[str, int]:
        """The limits read_message enforces, as its keyword arguments."""
        return dict(max_parts=self.max_parts, max_depth=self.max_depth,
                    max_header_bytes=self.max_header_bytes, max_lines=self.max_lines,
                    max_body_chars=self.max_body_chars)


class Screen(Section):
    allow_senders: list[str] = []
    max_per_sender_per_hour: int = Field(default=20, ge=0)  # 0: no limit
    max_per_hour: int = Field(default=500, ge=0)  # 0: no limit
    authserv_id: str = ""
    sender_auth: Literal["off", "dmarc", "dkim_spf"] = "off"

    @model_validator(mode="after")
    def _auth_needs_our_server(self):
        if self.sender_auth != "off" and not self.authserv_id.strip():
            raise ValueError(f"sender_auth = {self.sender_auth!r} needs authserv_id: the name our own mail "
                             "server writes in Authentication-Results (headers from anyone else are ignored)")
        return self


class Privacy(Section):
    redact_identifiers: bool = False
    keep_mail_days: int = 0
    keep_logins_days: int = 90


class Review(Section):
    claim_minutes: int = 30


class Send(Section):
    give_up_after: Duration = 86400.0
    backoff_first: Duration = 30.0
    backoff_max: Duration = 3600.0
    lease: Duration = 300.0
    batch_size: int = 50


class Log(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: str = ""


class Paths(Section):
    templates: str = ""
    var: str = "var"


class Web(Section):
    host: str = "127.0.0.1"
    port: int = 8080
    secret_key: str = ""
    secret_key_file: str = ""
    session_minutes: int = 480
    login_window: Duration = 900.0
    login_failures_per_user: int = 5
    login_failures_per_address: int = 20
    metrics_token: str = ""
    metrics_token_file: str = ""

    def secret(self, key: str = "secret_key") -> str:
        """The secret key (or metrics token): from the environment, or read from its *_file."""
        path = getattr(self, f"{key}_file")
        if path:
            try:
                return Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"web.{key}_file {path!r} cannot be read: {exc.strerror}")
        return getattr(self, key)


class Settings(Section):
    service: Service = Service()
    database: Database = Database()
    imap: Imap = Imap()
    smtp: Smtp = Smtp()
    worker: Worker = Worker()
    limits: Limits = Limits()
    screen: Screen = Screen()
    review: Review = Review()
    send: Send = Send()
    log: Log = Log()
    paths: Paths = Paths()
    web: Web = Web()
    privacy: Privacy = Privacy()

    def templates_dir(self) -> Path:
        if self.paths.templates:
            return Path(self.paths.templates)
        return Path(__file__).resolve().parent.parent / "templates"

    def mail_domain(self) -> str:
        return self.service.address.rsplit("@", 1)[1] or socket.getfqdn()


def _sections() -> dict[str, type[Section]]:
    return {name: field.annotation for name, field in Settings.model_fields.items()}


def _env_value(field_annotation, raw: str):
    """Environment values are strings; lists are comma-separated."""
    if get_origin(field_annotation) is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _from_environment(data: dict, environ) -> None:
    sections = _sections()
    # *_FILE variables go last (a stable sort), so a secret file wins whatever the environment's order.
    for name, raw in sorted(environ.items(), key=lambda item: item[0].upper().endswith("_FILE")):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        if section not in sections:
            raise ConfigError(f"environment variable {name}: there is no section [{section}]")
        secret_file = key.endswith("_file") and (section, key[:-5]) in SECRET_KEYS
        if key not in sections[section].model_fields and not secret_file:
            raise ConfigError(f"environment variable {name}: [{section}] has no key {key!r}")
        if secret_file:  # *_FILE secrets win over everything else
            try:
                raw, key = Path(raw).read_text().strip(), key[:-5]
            except OSError as exc:
                raise ConfigError(f"environment variable {name}: cannot read {raw!r}: {exc.strerror}")
        annotation = sections[section].model_fields[key].annotation
        data.setdefault(section, {})[key] = _env_value(annotation, raw)


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "is not a known setting (see config.example.toml)"
    return f"{where}: {message}" if where else message


def load(path: str | os.PathLike | None = None, environ=None) -> Settings:
    """Read settings; raise ConfigError naming the key and what is wrong."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("CONSULTANT_CONFIG")
    data: dict = {}
    source = "defaults"
    if path:
        source = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot be read: {exc}")
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}")
        for section, key in SECRET_KEYS:
            block = data.get(section)
            if isinstance(block, dict) and key in block:
                raise ConfigError(
                    f"{path}: {section}.{key}: secrets do not belong in the config file; set "
                    f"{ENV_PREFIX}{section.upper()}__{key.upper()} or {section}.{key}_file instead")
    _from_environment(data, environ)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{source}: {problems}")


def masked(settings: Settings) -> dict:
    """The effective settings as a dict, with secrets masked, for `config check`."""
    data = settings.model_dump()
    for section, key in SECRET_KEYS:
        if data.get(section, {}).get(key):
            data[section][key] = "********"
    return data


def every_key() -> list[tuple[str, str]]:
    """(section, key) for every setting: the docs and the example file must name each one."""
    return [(s, k) for s, model in _sections().items() for k in model.model_fields]
