"""Code lookup: search by number or words, and one page per code with everything known and its sources."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlmodel import Session

from ..cli.codes import resolve
from ..codeindex import ICD10CM
from ..codetables import Code, Release
from ..errors import NotFound
from ..knowledge import everything
from .render import code_url
from .session import ANYONE, Who, desk

router = APIRouter()
SYSTEMS = ("CPT", "HCPCS", ICD10CM)
MAX_QUERY = 200


def _search(session: Session, query: str) -> list:
    from ..textsearch import search

    return search(session, query, limit=30)


@router.get("/codes")
def codes_page(request: Request, q: str = "", who: Who = Depends(ANYONE)):
    """A query that is exactly a known code opens its page; anything else is a search."""
    q = " ".join(q.split())[:MAX_QUERY]
    hits, error = [], None
    if q:
        app = desk(request)
        if len(q) <= 10 and " " not in q:
            with app.lookup() as lookup:
                try:
                    facts = resolve(lookup, q)
                    return RedirectResponse(code_url(facts.system, facts.code), status_code=303)
                except NotFound:
                    pass
        with Session(app.reader) as session:
            hits = _search(session, q)
        if not hits:
            error = "No code matches that."
    return request.app.state.pages.render(request, "codes.html", title="Codes", q=q, hits=hits,
                                          code_url=code_url, error=error)


@router.get("/codes/{system}/{code}")
def code_page(request: Request, system: str, code: str, who: Who = Depends(ANYONE)):
    if system not in SYSTEMS:
        raise NotFound(f"no code system named {system[:20]!r}")
    app = desk(request)
    with app.lookup() as lookup:
        facts = lookup.facts(system, code[:10])
        if not facts.known:
            raise NotFound(f"{code[:10]!r} is not a {system} code we know")
        known = everything(lookup, facts)  # the same facts and sources as `consultant codes show`
        release = lookup.session.execute(select(Release).join(Code, Code.release_id == Release.id)
                                         .where(Code.system == system, Code.code == facts.code)).scalar_one_or_none()
        loaded = lookup.session.execute(select(Release.kind).distinct()).scalars().all()
    return request.app.state.pages.render(request, "code.html", title=f"{facts.code} ({system})", f=facts,
                                          release=release, loaded=sorted(loaded), code_url=code_url,
                                          ptp=known["ptp"], mues=known["mue"], fees=known["fee_schedule"])
