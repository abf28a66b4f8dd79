"""The queue: waiting questions oldest first, filters, keyset pagination, and "next item"."""
from __future__ import annotations

import re
import time
import weakref
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import func, select
from sqlmodel import Session

from ..codeindex import dot_icd
from ..models import Question, QuestionCode, as_utc, utcnow
from ..states import WAITING, Status
from .session import REVIEWER, Who, desk

router = APIRouter()
PAGE = 50
COUNTS_FOR = 2.0  # seconds the queue's waiting counts may be old
_counted: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
CODE = re.compile(r"[A-Z0-9][A-Z0-9.]{2,8}")
STATUS_CHOICES = ["waiting"] + [s.value for s in Status]


@dataclass
class Row:
    id: int
    status: str
    received_at: datetime
    sender: str
    subject: str
    codes: list[str]
    claimed_by: str | None
    claim_live: bool


def page(session: Session, status: str = "waiting", code: str = "", mine: str | None = None,
         after: int = 0, before: int = 0, limit: int = PAGE) -> tuple[list[Row], bool, bool]:
    """One page of the queue by keyset (id), so page 2,000 costs what page 1 costs.
    Returns (rows, has_newer, has_older)."""
    statuses = [s.value for s in WAITING] if status == "waiting" else [Status(status).value]
    # ICD-10-CM codes match with or without their dot; asked, not only quoted.
    wanted = sorted({code, dot_icd(code)} if code[:1].isalpha() else {code})
    back = bool(before)
    found: dict[int, object] = {}
    # Each query walks one index in id order and stops after a page: (status, id) once per status for
    # the plain queue, (code, question_id) once per form of the code, checking the status on the way.
    # An IN list over statuses, or a subquery over every question with the code, would read and sort
    # all of them: the page grew with the table.
    walks = [([one], None) for one in statuses] if not code else [(statuses, form) for form in wanted]
    for some, form in walks:
        for r in session.execute(_walk(some, form, mine, before if back else after, back, limit + 1)).all():
            found[r.id] = r
    ids = sorted(found, reverse=back)
    more = len(ids) > limit
    rows = [found[i] for i in sorted(ids[:limit])]
    has_newer, has_older = (True, more) if back else (more, bool(after))
    now = utcnow()
    out = []
    for r in rows:
        until = as_utc(r.claimed_until)
        sender = f"{r.from_name} <{r.from_addr}>" if r.from_name and r.from_addr else (r.from_addr or "-")
        out.append(Row(r.id, r.status, as_utc(r.received_at), sender, r.subject or "(no subject)",
                       [c["code"] for c in (r.codes or []) if not c.get("quoted")], r.claimed_by,
                       bool(r.claimed_by and until and until > now)))
    return out, has_newer, has_older


def _walk(statuses: list[str], code: str | None, mine: str | None, edge: int, back: bool, limit: int):
    """The next `limit` questions in these statuses (and with this code) past `edge`, in id order."""
    query = select(Question.id, Question.status, Question.received_at, Question.from_addr,
                   Question.from_name, Question.subject, Question.codes, Question.claimed_by,
                   Question.claimed_until)
    if code is None:
        key = Question.id
        query = query.where(Question.status == statuses[0])
    else:
        key = QuestionCode.question_id
        query = (query.select_from(QuestionCode).join(Question, Question.id == QuestionCode.question_id)
                 .where(QuestionCode.code == code, QuestionCode.quoted.is_(False), Question.status.in_(statuses)))
        # The same bound on both sides of the join: PostgreSQL's merge join otherwise reads the
        # question table from its first id.
        query = query.where(Question.id < edge) if back else query.where(Question.id > edge)
    if mine:
        query = query.where(Question.claimed_by == mine)
    query = query.where(key < edge).order_by(key.desc()) if back else query.where(key > edge).order_by(key)
    return query.limit(limit)


def waiting(session: Session) -> tuple[dict[str, int], datetime | None]:
    """The waiting counts, read again at most every COUNTS_FOR seconds per database: counting reads
    every waiting question (100,000 questions with 20,000 waiting: most of a PostgreSQL queue page)."""
    engine = session.get_bind()
    held = _counted.get(engine)
    if held is None or time.monotonic() - held[0] > COUNTS_FOR:
        held = _counted[engine] = (time.monotonic(), count_waiting(session))
    return held[1]


def count_waiting(session: Session) -> tuple[dict[str, int], datetime | None]:
    """Counts of the waiting statuses and when the oldest waiting question arrived. Both read the
    (status, id) index only; the oldest is the lowest id, as ids follow arrival."""
    statuses = [s.value for s in WAITING]
    found = dict(session.execute(select(Question.status, func.count()).where(Question.status.in_(statuses))
                                 .group_by(Question.status)).all())
    first = session.execute(select(func.min(Question.id)).where(Question.status.in_(statuses))).scalar()
    oldest = session.execute(select(Question.received_at).where(Question.id == first)).scalar() if first else None
    return {s: int(found.get(s, 0)) for s in statuses}, as_utc(oldest)


@router.get("/queue")
def queue_page(request: Request, who: Who = Depends(REVIEWER), status: str = "waiting", code: str = "",
               mine: bool = False, after: int = Query(0, ge=0), before: int = Query(0, ge=0)):
    errors = []
    if status not in STATUS_CHOICES:
        status = "waiting"
        errors.append("Unknown status; showing what is waiting.")
    code = code.strip().upper()
    if code and not CODE.fullmatch(code):
        code = ""
        errors.append("That is not a code; showing all codes.")
    with Session(desk(request).reader) as session:
        rows, has_newer, has_older = page(session, status, code, who.name if mine else None, after, before)
        counts, oldest = waiting(session)
    filters = {"status": status, "code": code, "mine": "1" if mine else ""}
    keep = "&".join(f"{k}={v}" for k, v in filters.items() if v)
    return request.app.state.pages.render(
        request, "queue.html", title="Queue", rows=rows, counts=counts, oldest=oldest,
        waiting=sum(counts.values()), filters=filters, statuses=STATUS_CHOICES,
        newer=f"/queue?{keep}&after={rows[-1].id}" if rows and has_newer else None,
        older=f"/queue?{keep}&before={rows[0].id}" if rows and has_older else None,
        first=f"/queue?{keep}" if has_older else None, error=" ".join(errors) or None)


@router.get("/next")
def next_item(request: Request, who: Who = Depends(REVIEWER)):
    """The question to work on: one you hold, else the oldest drafted one nobody holds."""
    with Session(desk(request).reader) as session:
        mine = session.execute(select(Question.id).where(Question.status == Status.IN_REVIEW.value,
                                                         Question.claimed_by == who.name)
                               .order_by(Question.id).limit(1)).scalar()
        oldest = mine or session.execute(select(Question.id).where(Question.status == Status.DRAFTED.value)
                                         .order_by(Question.id).limit(1)).scalar()
    if oldest is None:
        return RedirectResponse("/queue?msg=empty", status_code=303)
    return RedirectResponse(f"/questions/{oldest}", status_code=303)
