"""Settings: defaults, the example file, environment overrides, secrets and clear errors."""
import re
from pathlib import Path

import pytest

from consultant import config
from consultant.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_are_valid_without_a_file():
    settings = config.load(None, environ={})
    assert settings.database.url == "sqlite:///var/consultant.db"
    assert settings.limits.max_message_bytes == 10 * 1024 * 1024


def test_the_example_file_loads_and_matches_the_defaults():
    assert config.load(EXAMPLE, environ={}) == config.Settings()


def test_the_example_file_documents_every_setting():
    text = EXAMPLE.read_text()
    sections = dict.fromkeys(re.findall(r"^\[(\w+)\]", text, re.M))
    for section, key in config.every_key():
        if (section, key) in config.SECRET_KEYS:
            continue  # secrets are documented as their *_file key and environment variable
        assert section in sections, f"[{section}] missing from config.example.toml"
        block = text.split(f"[{section}]", 1)[1].split("\n[", 1)[0]
        assert re.search(rf"^{key} = ", block, re.M), f"{section}.{key} missing from config.example.toml"


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, '[database]\nurl = "sqlite:///a.db"\n[worker]\npoll_every = "2m"\n')
    settings = config.load(path, environ={"CONSULTANT_DATABASE__URL": "sqlite:///b.db",
                                          "CONSULTANT_SCREEN__ALLOW_SENDERS": "a@x.test, @y.test"})
    assert settings.database.url == "sqlite:///b.db"
    assert settings.worker.poll_every == 120
    assert settings.screen.allow_senders == ["a@x.test", "@y.test"]


def test_config_file_named_by_environment_is_used(tmp_path):
    path = write(tmp_path, '[service]\nname = "Coding Desk"\n')
    assert config.load(None, environ={"CONSULTANT_CONFIG": str(path)}).service.name == "Coding Desk"


def test_an_unknown_key_is_named(tmp_path):
    path = write(tmp_path, "[imap]\nprot = 993\n")
    with pytest.raises(ConfigError, match=r"imap\.prot: is not a known setting"):
        config.load(path, environ={})


def test_a_bad_value_is_named_with_what_is_wrong(tmp_path):
    path = write(tmp_path, '[imap]\nport = "nine"\n')
    with pytest.raises(ConfigError, match=r"imap\.port: .*integer"):
        config.load(path, environ={})


@pytest.mark.parametrize("text,named", [
    ("[limits]\nmax_parts = 0\n", r"limits\.max_parts: .*greater than or equal to 1"),
    ("[limits]\nmax_attempts = -1\n", r"limits\.max_attempts: .*greater than or equal to 1"),
    ("[limits]\nmax_message_bytes = 0\n", r"limits\.max_message_bytes: .*greater than or equal to 1"),
    ("[screen]\nmax_per_hour = -5\n", r"screen\.max_per_hour: .*greater than or equal to 0"),
])
def test_a_limit_that_would_refuse_everything_is_named(tmp_path, text, named):
    with pytest.raises(ConfigError, match=named):
        config.load(write(tmp_path, text), environ={})
    assert config.load(write(tmp_path, "[screen]\nmax_per_hour = 0\n"), environ={}).screen.max_per_hour == 0  # no limit


def test_a_bad_duration_says_what_a_duration_looks_like(tmp_path):
    path = write(tmp_path, '[send]\ngive_up_after = "soon"\n')
    with pytest.raises(ConfigError, match=r"send\.give_up_after: must be a duration"):
        config.load(path, environ={})


def test_broken_toml_is_reported_with_the_file_name(tmp_path):
    path = write(tmp_path, "[imap\nport = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(path, environ={})


def test_a_missing_config_file_is_reported():
    with pytest.raises(ConfigError, match="no such config file"):
        config.load("/nonexistent/config.toml", environ={})


def test_a_password_in_the_file_is_refused(tmp_path):
    path = write(tmp_path, '[imap]\npassword = "hunter2"\n')
    with pytest.raises(ConfigError, match=r"imap\.password: secrets do not belong.*CONSULTANT_IMAP__PASSWORD"):
        config.load(path, environ={})


def test_a_password_comes_from_the_environment_or_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    assert config.load(None, environ={"CONSULTANT_IMAP__PASSWORD": "env"}).imap.secret() == "env"
    settings = config.load(None, environ={"CONSULTANT_IMAP__PASSWORD": "env",
                                          "CONSULTANT_IMAP__PASSWORD_FILE": str(secret)})
    assert settings.imap.secret() == "from-file"
    path = write(tmp_path, f'[smtp]\npassword_file = "{secret}"\n')
    assert config.load(path, environ={}).smtp.secret() == "from-file"


@pytest.mark.parametrize("file_first", [True, False])
def test_a_password_file_wins_over_the_password_whatever_the_order_of_the_environment(tmp_path, file_first):
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    pair = [("CONSULTANT_IMAP__PASSWORD_FILE", str(secret)), ("CONSULTANT_IMAP__PASSWORD", "env")]
    environ = dict(pair if file_first else pair[::-1])
    assert list(environ)[0].endswith("_FILE") is file_first
    assert config.load(None, environ=environ).imap.secret() == "from-file"


def test_an_unreadable_password_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="CONSULTANT_IMAP__PASSWORD_FILE: cannot read"):
        config.load(None, environ={"CONSULTANT_IMAP__PASSWORD_FILE": str(tmp_path / "missing")})


def test_plain_imap_is_refused_off_loopback(tmp_path):
    path = write(tmp_path, '[imap]\nhost = "mail.example.com"\nsecurity = "plain"\n')
    with pytest.raises(ConfigError, match=r"imap: security = 'plain' is only allowed on loopback"):
        config.load(path, environ={})
    assert config.load(None, environ={"CONSULTANT_IMAP__SECURITY": "plain"}).imap.security == "plain"


def test_an_unknown_environment_key_is_named():
    with pytest.raises(ConfigError, match="CONSULTANT_IMAP__HOSTNAME"):
        config.load(None, environ={"CONSULTANT_IMAP__HOSTNAME": "x"})


def test_masked_settings_hide_secrets():
    settings = config.load(None, environ={"CONSULTANT_IMAP__PASSWORD": "hunter2"})
    assert "hunter2" not in str(config.masked(settings))
    assert config.masked(settings)["imap"]["password"] == "********"
