"""The `consultant` command as a user runs it: real processes, real database, no tracebacks."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "mailbox_fixtures"
SPINE = FIXTURES / "01-spine-myelogram-ct.eml"
NO_FROM = FIXTURES / "47-quarantined-no-from.eml"
BOUNCE = FIXTURES / "43-ignored-bounce-dsn.eml"


def consultant(*args, env=None, tmp=None, check=True):
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("CONSULTANT_PATHS__VAR", str(tmp or "var"))
    proc = subprocess.run([sys.executable, "-m", "consultant", *args], env=full_env,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def db_env(sqlite_url, tmp_path):
    return {"CONSULTANT_DATABASE__URL": sqlite_url, "CONSULTANT_PATHS__VAR": str(tmp_path)}


def test_config_check_names_a_bad_key_and_exits_2(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[imap]\nprot = 993\n")
    proc = consultant("--config", str(config), "config", "check", tmp=tmp_path, check=False)
    assert proc.returncode == 2
    assert "imap.prot: is not a known setting" in proc.stderr


def test_config_check_prints_the_effective_settings_with_secrets_masked(tmp_path):
    proc = consultant("config", "check", env={"CONSULTANT_IMAP__PASSWORD": "hunter2"}, tmp=tmp_path)
    assert "hunter2" not in proc.stdout and "********" in proc.stdout and "config ok" in proc.stdout


def test_a_command_on_an_empty_database_says_to_run_init(tmp_path):
    proc = consultant("queue", env={"CONSULTANT_DATABASE__URL": f"sqlite:///{tmp_path}/new.db"},
                      tmp=tmp_path, check=False)
    assert proc.returncode == 1 and "consultant init" in proc.stderr


def test_init_creates_the_schema_and_loads_the_starter_codes(tmp_path):
    env = {"CONSULTANT_DATABASE__URL": f"sqlite:///{tmp_path}/fresh.db"}
    proc = consultant("init", "--no-icd", env=env, tmp=tmp_path)
    assert "schema ready" in proc.stdout and "starter CPT/HCPCS set" in proc.stdout
    shown = json.loads(consultant("codes", "show", "99213", "--json", env=env, tmp=tmp_path).stdout)
    assert shown["system"] == "CPT" and shown["known"] and shown["related"]
    consultant("init", "--no-icd", env=env, tmp=tmp_path)  # running it again is harmless


def test_codes_show_finds_icd_codes_written_without_the_dot(db_env, tmp_path):
    shown = json.loads(consultant("codes", "show", "m5416", "--json", env=db_env).stdout)
    assert (shown["code"], shown["title"]) == ("M54.16", "Radiculopathy, lumbar region")
    proc = consultant("codes", "show", "ZZZ99", env=db_env, check=False)
    assert proc.returncode == 1 and "not a code we know" in proc.stderr


def test_inject_then_queue_and_show_tell_the_whole_story(db_env):
    out = consultant("inject", str(SPINE), str(BOUNCE), env=db_env).stdout
    assert "question 1: drafted" in out and "question 2: ignored" in out
    listing = json.loads(consultant("queue", "--json", env=db_env).stdout)
    assert listing["counts"]["drafted"] == 1 and listing["counts"]["ignored"] == 1
    assert [item["id"] for item in listing["items"]] == [1]
    assert "62303" in listing["items"][0]["codes"]
    ignored = json.loads(consultant("queue", "--status", "ignored", "--json", env=db_env).stdout)
    assert "bounce" in ignored["items"][0]["reason"]
    detail = json.loads(consultant("show", "1", "--json", env=db_env).stdout)
    assert detail["reply"]["kind"] == "answer" and "62303" in detail["reply"]["text"]
    assert {c["code"] for c in detail["codes"]} >= {"62303", "72128", "M54.16"}
    assert [e["to_status"] for e in detail["events"]] == ["received", "parsed", "drafted"]
    text = consultant("show", "1", env=db_env).stdout
    assert "62303" in text and "draft (answer)" in text


def test_requeue_replays_a_quarantined_question_and_records_who_did_it(db_env):
    assert "quarantined" in consultant("inject", str(NO_FROM), env=db_env).stdout
    assert "requeued as received" in consultant("requeue", "1", "--as", "olivia", env=db_env).stdout
    consultant("poll", "--once", "--no-fetch", env=db_env)
    detail = json.loads(consultant("show", "1", "--json", env=db_env).stdout)
    assert detail["status"] == "quarantined"
    assert ("olivia", "requeue") in {(e["actor"], e["action"]) for e in detail["events"]}
    proc = consultant("requeue", "1", env=db_env, check=False)  # quarantined again: allowed again
    assert proc.returncode == 0
    proc = consultant("requeue", "99", env=db_env, check=False)
    assert proc.returncode == 1 and "no question with id 99" in proc.stderr


def test_export_gives_back_the_message_exactly_as_it_arrived(db_env, tmp_path):
    consultant("inject", str(SPINE), env=db_env)
    out = tmp_path / "out.eml"
    consultant("export", "1", "--out", str(out), env=db_env)
    assert out.read_bytes() == SPINE.read_bytes()


def test_inspect_prints_one_json_line_per_file_and_survives_bad_files(db_env, tmp_path):
    garbage = tmp_path / "garbage.eml"
    garbage.write_bytes(b"\x00\xff" * 50)
    missing = tmp_path / "missing.eml"
    out = consultant("inspect", "--json", str(SPINE), str(BOUNCE), str(garbage), str(missing), env=db_env).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["action"] for r in lines[:2]] == ["draft", "ignore"]
    spine = {c["code"]: c for c in lines[0]["codes"]}
    assert spine["62303"] == {"code": "62303", "system": "CPT", "quoted": False, "modifiers": [],
                              "units": 1, "known": True, "title": spine["62303"]["title"]}
    assert spine["M54.16"]["system"] == "ICD-10-CM" and lines[0]["modifiers"] == ["59"]
    assert lines[2]["file"] == str(garbage) and lines[2]["action"] in ("quarantine", "draft", "ignore")
    assert lines[3]["action"] == "quarantine" and "cannot read" in lines[3]["reason"]
    listing = json.loads(consultant("queue", "--json", env=db_env).stdout)
    assert sum(listing["counts"].values()) == 0  # inspect stored nothing


def test_poll_once_fetches_from_imap(db_env, dovecot, imap_user):
    dovecot.deliver(imap_user, SPINE.read_bytes())
    env = dict(db_env, CONSULTANT_IMAP__HOST=imap_user.host, CONSULTANT_IMAP__PORT=str(imap_user.port),
               CONSULTANT_IMAP__SECURITY="plain", CONSULTANT_IMAP__USERNAME=imap_user.username,
               CONSULTANT_IMAP__PASSWORD=imap_user.password)
    out = consultant("poll", "--once", env=env).stdout
    assert "fetched 1 new" in out and "drafted 1" in out
    proc = consultant("poll", "--once", env=dict(env, CONSULTANT_IMAP__PORT="1"), check=False)
    assert proc.returncode == 4 and "IMAP server unreachable" in proc.stdout


def test_hostile_subjects_and_names_are_printed_literally(db_env, tmp_path):
    raw = (b"From: \"[/bold] Mallory [red]\" <mallory@x.test>\r\nTo: ask@caseconsultant.test\r\n"
           b"Subject: [/red] 99213 [link=http://evil.test]click[/link]\r\nMessage-ID: <h1@x.test>\r\n\r\n"
           b"Is 99213 ok? [/dim]\r\n")
    path = tmp_path / "hostile.eml"
    path.write_bytes(raw)
    consultant("inject", str(path), env=db_env)
    listing = consultant("queue", env=dict(db_env, COLUMNS="250")).stdout
    assert "[/red] 99213 [link=http://evil.test]click[/link]" in listing
    shown = consultant("show", "1", env=dict(db_env, COLUMNS="250")).stdout
    assert "[/bold] Mallory [red]" in shown and "[/dim]" in shown
