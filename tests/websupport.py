"""Helpers for the desk tests: settings with a secret key, users, and a signed-in test client."""
from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlmodel import Session

from consultant import accounts
from consultant.web import create_app
from support import make_settings

SECRET = "test-secret-key-0123456789abcdef-0123456789"
PASSWORD = "correct horse battery"
# alice and bob review; olivia operates; ada administers; mallory is disabled.
PEOPLE = {"alice": "reviewer", "bob": "reviewer", "olivia": "operator", "ada": "admin"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def web_settings(db_url: str, **sections):
    web = dict({"secret_key": SECRET}, **sections.pop("web", {}))
    return make_settings(db_url, web=web, **sections)


def add_people(engine, people: dict[str, str] = PEOPLE) -> None:
    with Session(engine) as session:
        for name, role in people.items():
            accounts.add(session, name, role, PASSWORD)
        session.commit()


def client_for(settings, engine) -> TestClient:
    return TestClient(create_app(settings, engine), follow_redirects=False)


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found[1]


def login(client: TestClient, name: str, password: str = PASSWORD):
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"name": name, "password": password, "csrf": token, "next": "/"})


def signed_in(settings, engine, name: str) -> TestClient:
    client = client_for(settings, engine)
    response = login(client, name)
    assert response.status_code == 303, response.text
    return client


def post(client: TestClient, url: str, page: str = "/queue", **data):
    """POST a form the way the browser does: with the token from a page of the same session."""
    data.setdefault("csrf", csrf_of(client.get(page).text))
    return client.post(url, data=data)
