"""Review: claim, release, approve (as drafted or edited) and reject, each recorded with who did it.

The CLI and the web desk call these functions; they never change a status themselves but go
through states.transition(). The caller commits.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlmodel import Session

from . import queries, states
from .draft import REJECTED, new_message_id, render, reply_subject
from .errors import ConsultantError
from .models import Question, Reply, utcnow
from .states import Status

MAX_EDIT_CHARS = 100_000


class ReviewError(ConsultantError):
    """The action is not possible now (claimed by someone else, wrong status, missing reason)."""


def _claim_is_live(q: Question) -> bool:
    return bool(q.claimed_by and q.claimed_until and q.claimed_until > utcnow())


def _describe_claim(q: Question) -> str:
    return f"claimed by {q.claimed_by} until {q.claimed_until:%H:%M} UTC"


def claim(session: Session, question_id: int, actor: str, minutes: int) -> Question:
    """drafted -> in_review for `actor`, with a lease of `minutes`. Claiming your own claim renews it;
    an expired claim of someone else is released first. Raises ReviewError otherwise."""
    q = queries.get(session, question_id)
    until = utcnow() + timedelta(minutes=minutes)
    if q.status == Status.IN_REVIEW:
        if q.claimed_by == actor:
            q.claimed_until = until
            states.note(session, question_id, actor, "renew", f"claim renewed for {minutes} minutes")
            session.flush()
            return q
        if _claim_is_live(q):
            raise ReviewError(f"question {question_id} is {_describe_claim(q)}")
        if not states.transition(session, question_id, Status.IN_REVIEW, Status.DRAFTED, "sweep",
                                 f"claim of {q.claimed_by} expired", action="release",
                                 claimed_by=None, claimed_until=None):
            raise ReviewError(f"question {question_id} changed; try again")
    elif q.status != Status.DRAFTED:
        raise ReviewError(f"question {question_id} is {q.status}; only drafted questions can be claimed")
    if not states.transition(session, question_id, Status.DRAFTED, Status.IN_REVIEW, actor,
                             f"claimed for {minutes} minutes", action="claim",
                             claimed_by=actor, claimed_until=until):
        raise ReviewError(f"question {question_id} was claimed by someone else first")
    session.refresh(q)
    return q


def release(session: Session, question_id: int, actor: str, force: bool = False) -> str | None:
    """in_review -> drafted. Only the holder may release a live claim, unless `force` (operators,
    admins); a release that overrides someone else's live claim is recorded as "force-release".
    Returns the name whose live claim was overridden, else None. Raises ReviewError."""
    q = queries.get(session, question_id)
    if q.status != Status.IN_REVIEW:
        raise ReviewError(f"question {question_id} is {q.status}, not in review")
    overrides = q.claimed_by != actor and _claim_is_live(q)
    if overrides and not force:
        raise ReviewError(f"question {question_id} is {_describe_claim(q)}; only they can release it "
                          "(an operator can override with --force)")
    if overrides:
        action, why = "force-release", f"forced release of a live claim ({_describe_claim(q)})"
    else:
        action, why = "release", f"released (was claimed by {q.claimed_by})"
    holder = q.claimed_by
    if not states.transition(session, question_id, Status.IN_REVIEW, Status.DRAFTED, actor, why,
                             action=action, claimed_by=None, claimed_until=None):
        raise ReviewError(f"question {question_id} changed; try again")
    return holder if overrides else None


def _hold(session: Session, question_id: int, actor: str, minutes: int) -> Question:
    """Make sure `actor` holds the claim: claim a drafted question, refuse one held by another."""
    q = queries.get(session, question_id)
    if q.status == Status.IN_REVIEW and q.claimed_by == actor:
        return q
    if q.status == Status.IN_REVIEW and _claim_is_live(q):
        raise ReviewError(f"question {question_id} is {_describe_claim(q)}")
    if q.status in (Status.DRAFTED, Status.IN_REVIEW):
        return claim(session, question_id, actor, minutes)
    raise ReviewError(f"question {question_id} is {q.status}; only drafted or claimed questions can be reviewed")


def edit(session: Session, question_id: int, actor: str, text: str, minutes: int) -> Reply:
    """Keep an edited text beside the original draft (the draft itself is never overwritten)."""
    _hold(session, question_id, actor, minutes)
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise ReviewError("the edited answer is empty")
    if len(text) > MAX_EDIT_CHARS:
        raise ReviewError(f"the edited answer is longer than {MAX_EDIT_CHARS} characters")
    reply = queries.reply(session, question_id)
    if reply is None:
        raise ReviewError(f"question {question_id} has no draft")
    reply.edited_text, reply.edited_by, reply.edited_at = text + "\n", actor, utcnow()
    states.note(session, question_id, actor, "edit", f"edited the answer ({len(text)} characters)")
    session.flush()
    return reply


def approve(session: Session, question_id: int, actor: str, minutes: int, text: str | None = None) -> None:
    """in_review -> approved (claiming first if needed), optionally with an edited text."""
    _hold(session, question_id, actor, minutes)
    if text is not None:
        edit(session, question_id, actor, text, minutes)
    reply = queries.reply(session, question_id)
    if reply is None:
        raise ReviewError(f"question {question_id} has no draft")
    how = "approved with edits" if reply.edited_text else "approved as drafted"
    if not states.transition(session, question_id, Status.IN_REVIEW, Status.APPROVED, actor, how,
                             action="approve", claimed_by=None, claimed_until=None):
        raise ReviewError(f"question {question_id} changed; try again")
    reply.next_attempt_at = utcnow()
    session.flush()


def reject(session: Session, question_id: int, actor: str, reason: str, minutes: int,
           notify: bool = False, templates: Path | None = None, service_name: str = "",
           domain: str = "") -> None:
    """in_review -> rejected with a required reason; optionally queue a notice to the asker."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise ReviewError("a reason is required to reject a question")
    q = _hold(session, question_id, actor, minutes)
    if not states.transition(session, question_id, Status.IN_REVIEW, Status.REJECTED, actor, reason,
                             action="reject", claimed_by=None, claimed_until=None):
        raise ReviewError(f"question {question_id} changed; try again")
    if notify:
        answer = queries.reply(session, question_id)
        if answer is None:
            raise ReviewError(f"question {question_id} has no address to notify")
        rendered = render(templates, REJECTED, asker=q.from_name or "there", service_name=service_name,
                          subject=q.subject or "", re_subject=reply_subject(q.subject or ""))
        session.add(Reply(question_id=question_id, purpose="notice", kind=REJECTED, to_addr=answer.to_addr,
                          subject=rendered.subject, text=rendered.text, html=rendered.html,
                          message_id=new_message_id(question_id, domain), in_reply_to=answer.in_reply_to,
                          references=answer.references, to_send=True, next_attempt_at=utcnow()))
        states.note(session, question_id, actor, "notify", "a notice of rejection will be sent")
    session.flush()
