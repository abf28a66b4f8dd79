"""`consultant users` and `consultant web` as an administrator runs them: real processes, real database."""
import os
import socket
import subprocess
import sys
import time

from datetime import timedelta

import httpx
from sqlmodel import Session

from consultant import accounts
from consultant.db import make_engine
from test_cli import consultant
from websupport import SECRET


def test_users_add_reads_the_password_from_stdin_and_stores_only_a_hash(sqlite_url, tmp_path):
    env = {"CONSULTANT_DATABASE__URL": sqlite_url}
    proc = subprocess.run([sys.executable, "-m", "consultant", "users", "add", "alice", "--role", "reviewer"],
                          input="a long enough password\n", env=dict(os.environ, **env),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "alice added as reviewer" in proc.stdout, proc.stderr
    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        user = accounts.get(session, "alice")
        assert user.role == "reviewer" and user.password_hash.startswith("$argon2")
        assert "a long enough password" not in user.password_hash
    engine.dispose()


def run(args, stdin, sqlite_url):
    return subprocess.run([sys.executable, "-m", "consultant", *args], input=stdin, capture_output=True, text=True,
                          env=dict(os.environ, CONSULTANT_DATABASE__URL=sqlite_url), timeout=60)


def test_users_passwd_disable_and_the_refusals(sqlite_url):
    assert run(["users", "add", "bob", "--role", "operator"], "first password ok\n", sqlite_url).returncode == 0
    short = run(["users", "add", "carl", "--role", "reviewer"], "short\n", sqlite_url)
    assert short.returncode == 1 and "at least 10 characters" in short.stderr
    role = run(["users", "add", "dave", "--role", "boss"], "long enough password\n", sqlite_url)
    assert role.returncode == 1 and "role must be one of" in role.stderr
    again = run(["users", "add", "bob", "--role", "operator"], "long enough password\n", sqlite_url)
    assert again.returncode == 1 and "exists already" in again.stderr
    assert run(["users", "passwd", "bob"], "second password ok\n", sqlite_url).returncode == 0
    assert run(["users", "disable", "bob"], "", sqlite_url).returncode == 0
    listed = run(["users", "list"], "", sqlite_url).stdout
    assert "bob" in listed and "disabled" in listed
    assert run(["users", "disable", "nobody"], "", sqlite_url).returncode == 1
    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        user, outcome = accounts.authenticate(session, "bob", "second password ok", "1.2.3.4",
                                              timedelta(minutes=15), 5, 20)
        assert (user, outcome) == (None, "disabled")
    engine.dispose()


def test_config_check_masks_the_web_secret_key(tmp_path):
    proc = consultant("config", "check", env={"CONSULTANT_WEB__SECRET_KEY": SECRET}, tmp=tmp_path)
    assert SECRET not in proc.stdout and "secret_key = '********'" in proc.stdout


def test_the_secret_key_may_come_from_a_file_but_never_from_the_config(tmp_path):
    secret_file = tmp_path / "key"
    secret_file.write_text(SECRET + "\n")
    proc = consultant("config", "check", env={"CONSULTANT_WEB__SECRET_KEY_FILE": str(secret_file)}, tmp=tmp_path)
    assert SECRET not in proc.stdout and "********" in proc.stdout
    config = tmp_path / "config.toml"
    config.write_text(f'[web]\nsecret_key = "{SECRET}"\n')
    refused = consultant("--config", str(config), "config", "check", tmp=tmp_path, check=False)
    assert refused.returncode == 2 and "web.secret_key: secrets do not belong in the config file" in refused.stderr


def test_web_refuses_to_start_without_a_secret_key(sqlite_url, tmp_path):
    proc = consultant("web", env={"CONSULTANT_DATABASE__URL": sqlite_url}, tmp=tmp_path, check=False)
    assert proc.returncode == 2 and "CONSULTANT_WEB__SECRET_KEY" in proc.stderr


def test_web_serves_the_desk_until_stopped(sqlite_url, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, CONSULTANT_DATABASE__URL=sqlite_url, CONSULTANT_WEB__SECRET_KEY=SECRET,
               CONSULTANT_WEB__PORT=str(port), CONSULTANT_PATHS__VAR=str(tmp_path))
    with subprocess.Popen([sys.executable, "-m", "consultant", "web"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as server:
        try:
            deadline, answer = time.monotonic() + 30, None
            while answer is None and time.monotonic() < deadline and server.poll() is None:
                try:
                    answer = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
                except httpx.TransportError:
                    time.sleep(0.1)
        finally:
            server.terminate()
            output = server.communicate(timeout=10)[0]
    assert answer is not None and answer.status_code == 200, output
    assert "Sign in to the review desk" in answer.text and "server" not in answer.headers
    assert f"review desk on http://127.0.0.1:{port}/" in output
