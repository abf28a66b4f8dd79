"""Page rendering: one autoescaping Jinja2 environment, filters, and code highlighting in message text."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from ..models import as_utc
from ..queries import age

WEB = Path(__file__).resolve().parent.parent.parent / "templates" / "web"
STATIC = WEB / "static"
# Messages a redirect may show, by key: a query parameter never puts its own text on the page.
NOTICES = {
    "claimed": "You hold the claim on this question.",
    "released": "Released: the question is back in the queue.",
    "saved": "Your edit is saved beside the original draft.",
    "approved": "Approved: the answer goes out with the next send run.",
    "rejected": "Rejected; the reason is in the history.",
    "requeued": "Requeued: the worker processes it again.",
    "retried": "Queued to send again.",
    "empty": "Nothing is waiting for review right now.",
    "loggedout": "You are signed out.",
}


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC")


def _age(value: datetime | str | None) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return age(as_utc(value))


# Bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): a right-to-left override
# makes "invoice<RLO>fdp.exe" read "invoiceexe.pdf" and can reorder the page around it. Shown as
# visible marks instead; ordinary right-to-left text needs none of them.
BIDI_CONTROLS = {code: f"[U+{code:04X}]" for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def _visible(value):
    """Jinja's finalize: every printed string loses its hidden bidi controls (our own Markup keeps them)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return value.translate(BIDI_CONTROLS)
    return value


def environment() -> Environment:
    # autoescape for every template, whatever its name: message content is hostile.
    env = Environment(loader=FileSystemLoader(str(WEB)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, finalize=_visible)
    env.filters["when"] = _when
    env.filters["age"] = _age
    return env


class Pages:
    """Renders templates with what every page needs: the user, the CSRF token, a notice."""

    def __init__(self):
        self.env = environment()

    def render(self, request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
        session = getattr(request.state, "session", None) or {}
        user = getattr(request.state, "user", None)
        notice = NOTICES.get(request.query_params.get("msg", ""))
        html = self.env.get_template(template).render(
            user=user, csrf=session.get("c", ""), notice=notice, error=context.pop("error", None),
            path=request.url.path, **context)
        return HTMLResponse(html, status_code=status_code)


def code_url(system: str, code: str) -> str:
    return f"/codes/{system}/{code}"


def highlight(text: str, codes: list[dict]) -> list[tuple[str, dict | None]]:
    """Split text into (piece, code or None) so the template can mark each mention of a found code;
    the template escapes every piece (no HTML is built here)."""
    spans = []
    for found in codes:
        for start, end in found.get("spans") or []:
            if 0 <= start < end <= len(text):
                spans.append((start, end, found))
    spans.sort(key=lambda s: (s[0], -s[1]))
    pieces: list[tuple[str, dict | None]] = []
    pos = 0
    for start, end, found in spans:
        if start < pos:
            continue  # overlapping mentions: keep the first
        if start > pos:
            pieces.append((text[pos:start], None))
        pieces.append((text[start:end], found))
        pos = end
    if pos < len(text):
        pieces.append((text[pos:], None))
    return pieces
