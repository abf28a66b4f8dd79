"""The operator's view (figures, charts, quarantine and failed lists with requeue/retry), /healthz, /metrics."""
from __future__ import annotations

import hmac

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlmodel import Session

from .. import operator as operator_actions
from ..errors import ConsultantError
from ..models import utcnow
from .session import OPERATOR, Who, current_user, desk

router = APIRouter()


def render_operator(request: Request, who: Who, q_after: int | None = None, f_after: int | None = None,
                    error: str | None = None, status: int = 200):
    from .. import stats

    with Session(desk(request).reader) as session:
        view = stats.overview(session, utcnow())
        if q_after:
            view["quarantined"] = stats.quarantined(session, after=q_after)
        if f_after:
            view["failed"] = stats.failed(session, after=f_after)
    # The charts are SVG built by consultant.charts from counts and fixed labels, every text escaped
    # there; no message content reaches them.
    charts = {name: Markup(svg) for name, svg in view.pop("charts", {}).items()}
    return request.app.state.pages.render(request, "operator.html", status, title="Operator", v=view,
                                          charts=charts, error=error)


@router.get("/operator")
def operator_page(request: Request, who: Who = Depends(OPERATOR), q_after: int | None = Query(None, ge=0),
                  f_after: int | None = Query(None, ge=0)):
    return render_operator(request, who, q_after, f_after)


def _act(request: Request, who: Who, action, done: str):
    with Session(desk(request).engine) as session:
        try:
            action(session)
            session.commit()
        except ConsultantError as exc:  # includes NotFound: the list may be stale
            session.rollback()
            return render_operator(request, who, error=str(exc), status=409)
    return RedirectResponse(f"/operator?msg={done}", status_code=303)


@router.post("/operator/requeue/{qid}")
def requeue(request: Request, qid: int, who: Who = Depends(OPERATOR)):
    return _act(request, who, lambda s: operator_actions.requeue(s, qid, who.name), "requeued")


@router.post("/operator/retry/{qid}")
def retry(request: Request, qid: int, who: Who = Depends(OPERATOR)):
    return _act(request, who, lambda s: operator_actions.retry(s, qid, who.name), "retried")


@router.get("/healthz")
def healthz(request: Request):
    """For probes, without a login: 200 when healthy, else 503; the body says why (no content)."""
    from .. import health

    app = desk(request)
    ok, body = health.check(app.engine, app.settings, utcnow())
    return JSONResponse(body, status_code=200 if ok else 503)


def _token_ok(request: Request) -> bool:
    expected = desk(request).settings.web.secret("metrics_token")
    sent = request.headers.get("authorization", "")
    return bool(expected) and sent.startswith("Bearer ") and hmac.compare_digest(
        sent.removeprefix("Bearer ").strip().encode(), expected.encode())


@router.get("/metrics")
def metrics(request: Request):
    """Prometheus text format: for an operator's session, or for a scraper with web.metrics_token."""
    from .. import metrics as metrics_module

    if not _token_ok(request):
        OPERATOR(current_user(request))
    body, content_type = metrics_module.render(desk(request).engine, utcnow())
    return Response(body, media_type=content_type)
