"""CSRF: every form carries the session's token; a state-changing request without it gets 403."""
from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
FIELD = "csrf"


async def check(request: Request) -> None:
    """App-wide dependency: compare the form's token with the session's, in constant time.

    The token lives in the signed session cookie, so a forged form on another site cannot know it;
    SameSite=Lax keeps the cookie off cross-site POSTs as a second line.
    """
    if request.method in SAFE_METHODS:
        return
    expected = (getattr(request.state, "session", None) or {}).get("c", "")
    sent = request.headers.get("x-csrf-token", "")
    if not sent and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # Starlette caches it, so the route reads the same form
        value = form.get(FIELD, "")
        sent = value if isinstance(value, str) else ""
    if not expected or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(status_code=403, detail="missing or stale form token: reload the page and try again")
