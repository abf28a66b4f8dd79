"""Attacks on the desk, part two: cross-site request forgery on every state-changing route, session
fixation and replay, and privilege escalation between roles. The routes are enumerated from the app
itself, so a route added later is attacked too."""
import base64
import json

import pytest
from fastapi.routing import APIRoute
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlmodel import Session

from attacksupport import database_copy
from consultant import accounts, review
from consultant.accounts import LoginEvent, User
from consultant.db import make_engine
from consultant.models import Event, Question, Reply
from consultant.web.session import COOKIE, current_user
from support import drafted, question_bytes
from websupport import PASSWORD, SECRET, add_people, client_for, csrf_of, login, signed_in, web_settings

SAFE = {"GET", "HEAD"}
# Routes with no role dependency, each for a reason: the login pair is for everyone, /healthz for
# probes, /metrics checks its bearer token or the operator role in its body (tested below).
PUBLIC = {"/login", "/logout", "/healthz", "/metrics"}
FORM = {"name": "alice", "password": PASSWORD, "text": "a forged answer", "reason": "forged", "notify": "1"}
USERS = {"reviewer": "alice", "operator": "olivia"}
# Who may do what, by path: reading a question is for both roles, acting on it for reviewers only.
POLICY = {"/operator": "operator", "/queue": "reviewer", "/next": "reviewer", "/questions/": "reviewer"}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def base(request, tmp_path_factory):
    """The people and one drafted question, made once (drafting builds the code index: slow); each
    test attacks its own copy."""
    url = database_copy(request, request.param, tmp_path_factory.mktemp("attacks-base"))
    engine = make_engine(url)
    add_people(engine)
    qid = drafted(engine, web_settings(url), question_bytes(1))
    engine.dispose()
    return request.param, url, qid


@pytest.fixture
def url(request, base, tmp_path):
    return database_copy(request, base[0], tmp_path, source=base[1])


@pytest.fixture
def settings(url):
    return web_settings(url)


@pytest.fixture
def db_url(url):
    """This module's database copy, so conftest's `engine` fixture opens it."""
    return url


@pytest.fixture
def qid(base):
    return base[2]


def plant(client, value: str) -> None:
    """Put a cookie in the client's jar as the desk itself would have set it (same domain)."""
    client.get("/login")
    domain = next(c.domain for c in client.cookies.jar if c.name == COOKIE)
    client.cookies.set(COOKIE, value, domain=domain)


def api_routes(client) -> list[APIRoute]:
    """Every route of the app, also inside included routers (FastAPI may keep those nested)."""
    found, stack = [], list(client.app.routes)
    while stack:
        route = stack.pop()
        if isinstance(route, APIRoute):
            found.append(route)
        else:
            stack.extend(getattr(getattr(route, "original_router", route), "routes", []))
    assert len(found) >= 10, "the route walk found too few routes"
    return found


def _dependencies(route):
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        yield dependency.call
        stack.extend(dependency.dependencies)


def required_roles(route) -> tuple[str, ...] | None:
    return next((call.roles for call in _dependencies(route) if hasattr(call, "roles")), None)


def url_of(route, qid: int) -> str:
    """The route's path with its parameters filled: real values where known, else "1" (a refused
    request is refused before its parameters are read)."""
    known = {"qid": qid, "system": "CPT", "code": "99213"}
    return route.path.format(**{name: known.get(name, 1) for name in route.param_convertors})


def snapshot(engine):
    """Everything a forged request could change."""
    with Session(engine) as session:
        return (session.execute(select(Question.id, Question.status, Question.claimed_by, Question.claimed_until)
                                .order_by(Question.id)).all(),
                session.execute(select(Reply.id, Reply.edited_text, Reply.to_send).order_by(Reply.id)).all(),
                session.execute(select(User.name, User.role, User.disabled, User.session_version)
                                .order_by(User.name)).all(),
                session.execute(select(func.count(Event.id))).scalar(),
                session.execute(select(func.count(LoginEvent.id))).scalar())


def token_of(client, page: str = "/login") -> str:
    return csrf_of(client.get(page, follow_redirects=True).text)


def test_every_state_changing_route_refuses_a_missing_wrong_or_foreign_token(settings, engine, qid):
    clients = {name: signed_in(settings, engine, name) for name in ("alice", "bob", "olivia")}
    anonymous, stranger = client_for(settings, engine), client_for(settings, engine)
    foreign = {"bob": token_of(clients["bob"]), "stranger": token_of(stranger)}
    routes = [r for r in api_routes(anonymous) if r.methods - SAFE]
    assert {r.path for r in routes} >= {"/login", "/logout", "/questions/{qid}/approve", "/operator/requeue/{qid}"}
    routes.sort(key=lambda r: r.path == "/logout")  # the positive check of logout ends alice's session
    before = snapshot(engine)
    victims = {}
    for route in routes:
        roles = required_roles(route)
        victim = clients[USERS[roles[0]]] if roles else anonymous if route.path == "/login" else clients["alice"]
        other = foreign["stranger"] if victim is anonymous else foreign["bob"]
        url = url_of(route, qid)
        for method in route.methods - SAFE:
            for attempt, data, headers in (("no token", FORM, {}), ("a wrong token", {**FORM, "csrf": "A" * 43}, {}),
                                           ("another session's token", {**FORM, "csrf": other}, {}),
                                           ("another session's token in the header", FORM, {"X-CSRF-Token": other})):
                response = victim.request(method, url, data=data, headers=headers)
                assert response.status_code == 403, f"{method} {url} with {attempt}: {response.status_code}"
            victims[(method, url)] = victim
    assert snapshot(engine) == before, "a refused request changed the database"
    assert clients["alice"].get("/queue").status_code == 200  # a forged logout did not sign alice out
    for (method, url), victim in victims.items():  # the same requests with the right token get through
        response = victim.request(method, url, data={**FORM, "csrf": token_of(victim, "/")})
        assert response.status_code != 403, f"{method} {url} refuses even its own token"


def test_no_get_route_changes_anything(settings, engine, qid):
    """GET carries no token, so it must be safe: a link or an <img> on another site cannot act."""
    ada, before, visited = signed_in(settings, engine, "ada"), snapshot(engine), 0
    for route in api_routes(ada):
        if "GET" in route.methods:
            assert ada.get(url_of(route, qid)).status_code != 500, route.path  # /healthz may say 503
            visited += 1
    assert visited >= 8 and snapshot(engine) == before


def test_every_route_requires_a_role_a_login_or_is_public_on_purpose(settings, engine):
    for route in api_routes(client_for(settings, engine)):
        if route.path in PUBLIC:
            continue
        roles = required_roles(route)
        assert roles or current_user in set(_dependencies(route)), (
            f"{route.path} needs neither a role nor a login: add one, or add it to PUBLIC with a reason")
        for prefix, role in POLICY.items():  # the routes enumerated below are only as strict as declared
            if route.path.startswith(prefix) and (route.methods - SAFE or prefix != "/questions/"):
                assert roles == (role,), f"{route.path} should need the {role} role, not {roles}"


def test_no_role_can_use_a_route_of_another_role(settings, engine, qid):
    clients = {role: signed_in(settings, engine, name) for role, name in USERS.items()}
    before, tried = snapshot(engine), 0
    for route in api_routes(client_for(settings, engine)):
        roles = required_roles(route) or ()
        for role, client in clients.items():
            if not roles or role in roles:
                continue
            for method in route.methods - {"HEAD"}:
                data = {**FORM, "csrf": token_of(client, "/")} if method != "GET" else None
                response = client.request(method, url_of(route, qid), data=data)
                assert response.status_code == 403, f"{role} {method} {route.path}: {response.status_code}"
                tried += 1
    assert tried >= 8 and clients["reviewer"].get("/metrics").status_code == 403
    assert snapshot(engine) == before


def test_a_reviewer_cannot_take_over_or_act_on_another_reviewers_claim(settings, engine, qid):
    with Session(engine) as session:
        review.claim(session, qid, "bob", 30)
        session.commit()
    alice, before = signed_in(settings, engine, "alice"), snapshot(engine)
    for action in ("claim", "release", "save", "approve", "reject"):
        response = alice.post(f"/questions/{qid}/{action}", data={**FORM, "csrf": token_of(alice, "/")})
        assert response.status_code == 409 and "claimed by bob" in response.text, action
    assert snapshot(engine) == before


def test_a_disabled_users_open_session_stops_at_once_even_mid_form(settings, engine, qid):
    alice = signed_in(settings, engine, "alice")
    token = token_of(alice, f"/questions/{qid}")
    with Session(engine) as session:
        accounts.set_disabled(session, "alice")
        session.commit()
    before = snapshot(engine)
    response = alice.post(f"/questions/{qid}/claim", data={"csrf": token})
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert snapshot(engine) == before


def set_role(engine, name: str, role: str) -> None:
    with Session(engine) as session:
        accounts.get(session, name).role = role
        session.commit()


def test_a_role_change_takes_effect_on_the_next_request(settings, engine, qid):
    alice = signed_in(settings, engine, "alice")
    token = token_of(alice, "/queue")
    set_role(engine, "alice", "operator")
    assert alice.get("/queue").status_code == 403 and alice.get("/operator").status_code == 200
    assert alice.post(f"/questions/{qid}/claim", data={"csrf": token}).status_code == 403
    set_role(engine, "alice", "reviewer")
    assert alice.get("/operator").status_code == 403 and alice.get("/queue").status_code == 200


def _payload(cookie: str) -> dict:
    body = cookie.split(".", 1)[0]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def test_a_forged_cookie_cannot_claim_another_user_or_a_role(settings, engine, qid):
    alice = signed_in(settings, engine, "alice")
    cookie = alice.cookies[COOKIE]
    with Session(engine) as session:
        ada = accounts.get(session, "ada")
        ada_id, ada_version = ada.id, ada.session_version
    claims = dict(_payload(cookie), u=ada_id, v=ada_version, role="admin")
    body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
    forged = client_for(settings, engine)
    forged.cookies.set(COOKIE, body + "." + cookie.split(".", 1)[1])  # alice's signature on ada's id
    assert forged.get("/operator").status_code == 303
    # Even a cookie signed with the real key carries no role: the role is read from the database.
    signer = URLSafeTimedSerializer(SECRET, salt="consultant-session")
    boasting = client_for(settings, engine)
    boasting.cookies.set(COOKIE, signer.dumps(dict(_payload(cookie), role="admin", r="admin")))
    assert boasting.get("/queue").status_code == 200 and boasting.get("/operator").status_code == 403


def test_a_session_planted_before_login_is_not_the_session_after_it(settings, engine, qid):
    attacker = client_for(settings, engine)
    planted_token = token_of(attacker)
    planted = attacker.cookies[COOKIE]
    victim = client_for(settings, engine)
    plant(victim, planted)  # e.g. set through a sibling subdomain
    assert token_of(victim) == planted_token  # the victim's form really runs in the planted session
    response = victim.post("/login", data={"name": "alice", "password": PASSWORD, "csrf": planted_token})
    assert response.status_code == 303
    after = victim.cookies[COOKIE]
    assert after != planted and _payload(after)["s"] != _payload(planted)["s"] and "u" not in _payload(planted)
    assert attacker.get("/queue").status_code == 303  # the planted cookie is still nobody's
    before = snapshot(engine)
    assert attacker.post(f"/questions/{qid}/claim", data={"csrf": planted_token}).status_code == 303
    assert victim.post(f"/questions/{qid}/claim", data={"csrf": planted_token}).status_code == 403
    assert snapshot(engine) == before


def test_a_cookie_value_the_attacker_chose_is_ignored(settings, engine, qid):
    for chosen in ("attacker-chosen-session", base64.urlsafe_b64encode(b'{"u":1,"v":1,"s":"x","c":"y"}').decode()):
        client = client_for(settings, engine)
        plant(client, chosen)
        form = client.get("/login")
        assert COOKIE in form.headers.get("set-cookie", "") and client.cookies[COOKIE] != chosen
        assert client.get("/queue").status_code == 303
        assert login(client, "alice").status_code == 303 and client.cookies[COOKIE] != chosen


def test_logging_out_ends_the_session_on_the_server(settings, engine, qid):
    alice, elsewhere = signed_in(settings, engine, "alice"), signed_in(settings, engine, "alice")
    stolen, token = alice.cookies[COOKIE], token_of(alice, "/queue")
    assert alice.post("/logout", data={"csrf": token}).status_code == 303
    replay = client_for(settings, engine)
    replay.cookies.set(COOKIE, stolen)
    assert replay.get("/queue").status_code == 303 and replay.get("/queue").headers["location"].startswith("/login")
    before = snapshot(engine)
    assert replay.post(f"/questions/{qid}/claim", data={"csrf": token}).status_code in (303, 403)
    assert snapshot(engine) == before
    assert elsewhere.get("/queue").status_code == 303  # signing out ends the user's other sessions too
    assert login(client_for(settings, engine), "alice").status_code == 303  # and a new login works
