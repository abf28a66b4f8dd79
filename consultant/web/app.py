"""The app factory: routes, sessions on every request, security headers, error pages."""
from __future__ import annotations

import time
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from .. import accounts
from ..config import Settings
from ..db import make_engine
from ..errors import NotFound
from . import codes, csrf, login, operator, question, queue
from .render import STATIC, Pages
from .session import Desk, Forbidden, NotLoggedIn, Who, current_user

# No inline script or style anywhere: the only script is our own /static/desk.js.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
# Paths that never set a session cookie (probes, scrapers, files).
NO_SESSION = ("/healthz", "/metrics", "/static/")


def create_app(settings: Settings, engine=None) -> FastAPI:
    """The desk for these settings; raises ConfigError without a usable secret key."""
    engine = engine if engine is not None else make_engine(settings.database.url)
    accounts.dummy_hash()  # made now, so the first login with an unknown name takes no longer either
    app = FastAPI(title="CaseConsultant desk", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(csrf.check)])
    app.state.desk = Desk(settings, engine)
    app.state.pages = pages = Pages()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (login, queue, question, codes, operator):
        app.include_router(module.router)

    @app.middleware("http")
    async def sessions_and_headers(request: Request, call_next):
        started = time.perf_counter()
        request.state.new_session = False
        request.state.session = app.state.desk.read(request)
        response = await call_next(request)
        # The time the app took, for the browser's network panel and bench/web.py.
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        if request.state.new_session and not request.url.path.startswith(NO_SESSION):
            app.state.desk.write(response, request.state.session, https=request.url.scheme == "https")
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")  # pages hold patients' questions
        return response

    @app.exception_handler(NotLoggedIn)
    async def to_login(request: Request, _exc) -> Response:
        target = request.url.path if request.method == "GET" else ""
        where = "/login" + (f"?next={quote(target, safe='/')}" if target and target != "/" else "")
        return RedirectResponse(where, status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, _exc) -> Response:
        return pages.render(request, "error.html", 403, title="Not allowed",
                            error="Your role does not allow this page or action.")

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return pages.render(request, "error.html", 404, title="Not found", error=str(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's default answer is JSON that echoes the hostile input back: name the fields only.
        fields = sorted({str(e.get("loc", ("", "?"))[-1]) for e in exc.errors()})
        return pages.render(request, "error.html", 422, title="Bad request",
                            error="Not a valid value for: " + ", ".join(f[:40] for f in fields))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        titles = {403: "Refused", 404: "Not found", 405: "Not allowed"}
        return pages.render(request, "error.html", exc.status_code,
                            title=titles.get(exc.status_code, "Error"), error=str(exc.detail))

    @app.get("/")
    def home(who: Who = Depends(current_user)):
        return RedirectResponse("/operator" if who.role == "operator" else "/queue", status_code=303)

    return app
