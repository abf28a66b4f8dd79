"""The question page (message left, draft and codes right) and the review actions it posts."""
from __future__ import annotations

from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32, default

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from sqlmodel import Session

from .. import queries, review
from ..errors import NotFound
from ..models import as_utc, utcnow
from ..redact import mask
from ..states import Status
from .render import BIDI_CONTROLS, code_url, highlight
from .session import ANYONE, REVIEWER, Who, desk

router = APIRouter()
SHOWN_HEADERS = ("From", "Reply-To", "To", "Cc", "Date", "Subject", "Message-ID")


def message_headers(session: Session, qid: int) -> list[tuple[str, str]]:
    """The headers a reviewer wants, decoded; parsing only the header block, never the body."""
    try:
        raw = queries.raw(session, qid)
    except NotFound:
        return []
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0][:64 * 1024]
    out = []
    for policy in (default, compat32):
        try:
            parsed = BytesHeaderParser(policy=policy).parsebytes(head)
            out = [(name, " ".join(str(value).split())[:500]) for name in SHOWN_HEADERS
                   for value in parsed.get_all(name) or []]
            break
        except Exception:  # a header the modern parser cannot read: show it undecoded
            continue
    return out


def _code_panel(lookup, codes: list[dict], analysis: dict) -> list[dict]:
    panel = []
    for found in codes:
        if found.get("quoted"):
            continue
        facts = lookup.facts(found["system"], found["code"])
        warnings = [w for w in analysis.get("warnings", []) if found["code"] in w.get("codes", [])]
        panel.append(dict(found=found, facts=facts, warnings=warnings, url=code_url(found["system"], found["code"])))
    return panel


def render_question(request: Request, qid: int, who: Who, error: str | None = None, status: int = 200,
                    typed: str | None = None):
    app = desk(request)
    with Session(app.reader) as session:
        d = queries.detail(session, qid)
        headers = message_headers(session, qid)
    if app.settings.privacy.redact_identifiers:  # the raw headers are not masked in the database
        headers = [(name, mask(value)) for name, value in headers]
    with app.lookup() as lookup:
        panel = _code_panel(lookup, d["codes"], d["analysis"] or {})
    reply = d["reply"]
    current = (reply["edited_text"] or reply["text"]) if reply else ""
    until = as_utc(datetime.fromisoformat(d["claimed_until"])) if d["claimed_until"] else None
    live = bool(d["claimed_by"] and until and until > utcnow())
    reviewable = d["status"] in (Status.DRAFTED, Status.IN_REVIEW) and reply is not None
    return request.app.state.pages.render(
        request, "question.html", status, title=f"Question {qid}", q=d, headers=headers,
        pieces=highlight(d["new_text"] or "", d["codes"]), panel=panel, analysis=d["analysis"] or {},
        reply=reply, draft=typed if typed is not None else current, can_review=who.can("reviewer") and reviewable,
        mine=d["status"] == Status.IN_REVIEW and d["claimed_by"] == who.name,
        held_by_other=d["status"] == Status.IN_REVIEW and live and d["claimed_by"] != who.name,
        claimed_until=until, error=error, code_url=code_url,
        purged=next((e["reason"] for e in d["events"] if e["action"] == "purged"), None))


@router.get("/questions/{qid}")
def question_page(request: Request, qid: int, who: Who = Depends(ANYONE)):
    return render_question(request, qid, who)


def _act(request: Request, qid: int, who: Who, action, done: str, typed: str | None = None):
    """Run one review function in a transaction; a refusal re-renders the page with its reason."""
    app = desk(request)
    with Session(app.engine) as session:
        try:
            action(session)
            session.commit()
        except review.ReviewError as exc:
            session.rollback()
            return render_question(request, qid, who, error=str(exc), status=409, typed=typed)
    return RedirectResponse(f"/questions/{qid}?msg={done}", status_code=303)


def _minutes(request: Request) -> int:
    return desk(request).settings.review.claim_minutes


def _normal(text: str) -> str:
    """The text as the editor shows it: the browser's line ends, and bidi controls as visible marks
    (so a draft greeting a name with a hidden override is not taken for an edit)."""
    return text.replace("\r\n", "\n").strip().translate(BIDI_CONTROLS)


@router.post("/questions/{qid}/claim")
def claim(request: Request, qid: int, who: Who = Depends(REVIEWER)):
    return _act(request, qid, who, lambda s: review.claim(s, qid, who.name, _minutes(request)), "claimed")


@router.post("/questions/{qid}/release")
def release(request: Request, qid: int, who: Who = Depends(REVIEWER)):
    force = who.role == "admin"
    return _act(request, qid, who, lambda s: review.release(s, qid, who.name, force=force), "released")


@router.post("/questions/{qid}/save")
def save(request: Request, qid: int, text: str = Form(""), who: Who = Depends(REVIEWER)):
    return _act(request, qid, who, lambda s: review.edit(s, qid, who.name, text, _minutes(request)), "saved",
                typed=text)


@router.post("/questions/{qid}/approve")
def approve(request: Request, qid: int, text: str = Form(""), who: Who = Depends(REVIEWER)):
    """Approve and send: the typed text counts as an edit only if it differs from what is stored."""

    def run(session: Session) -> None:
        reply = queries.reply(session, qid)
        current = (reply.edited_text or reply.text) if reply else ""
        edited = text if text.strip() and _normal(text) != _normal(current) else None
        review.approve(session, qid, who.name, _minutes(request), edited)

    return _act(request, qid, who, run, "approved", typed=text)


@router.post("/questions/{qid}/reject")
def reject(request: Request, qid: int, reason: str = Form(""), notify: str = Form(""),
           who: Who = Depends(REVIEWER)):
    settings = desk(request).settings
    return _act(request, qid, who, lambda s: review.reject(
        s, qid, who.name, reason, _minutes(request), notify=bool(notify), templates=settings.templates_dir(),
        service_name=settings.service.name, domain=settings.mail_domain()), "rejected")
