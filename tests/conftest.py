"""Shared test set-up: seeded databases on SQLite and PostgreSQL, settings, and the real servers.

Real servers (Dovecot, PostgreSQL, aiosmtpd) come from tests/servers/fixtures.py. The code data
(the starter set and all of ICD-10-CM) is loaded once per session into a seed database that each
test copies: a file copy on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlmodel import Session

from consultant.codeload import load_bundled
from consultant.db import make_engine, upgrade

pytest_plugins = ["servers.fixtures"]

def seed(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine) as session:
        load_bundled(session)
        session.commit()
    engine.dispose()


@pytest.fixture(scope="session")
def seeded_sqlite(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("seed") / "seed.db"
    seed(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template(pg_cluster) -> str:
    url = pg_cluster.create_database("consultant_seed")
    seed(url)
    return "consultant_seed"


@pytest.fixture
def sqlite_url(seeded_sqlite, tmp_path) -> str:
    path = tmp_path / "consultant.db"
    shutil.copyfile(seeded_sqlite, path)
    return f"sqlite:///{path}"


@pytest.fixture
def pg_url(pg_cluster, pg_template) -> str:
    return pg_cluster.create_database(template=pg_template)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request) -> str:
    """The same test on SQLite and on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url):
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(pg_url):
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()
