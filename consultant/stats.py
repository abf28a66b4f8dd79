"""Operator figures from aggregate SQL: counts, waiting, activity, review times, reviewers, problem lists."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import Integer, and_, case, cast, extract, func, literal, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from . import rules, servicelog
from .logs import redact
from .models import Event, Question, Reply, as_utc
from .states import WAITING, Status

PERCENTILES = (50, 90, 95)
APPROVED_AS_DRAFTED = "approved as drafted"  # the reasons review.approve() records
APPROVED_WITH_EDITS = "approved with edits"
MAX_PAGE = 200
REVIEW_SAMPLE = 5000
BUCKETS = {"hour": (3600, 24), "day": (86400, 30)}


def _epoch(session: Session, value):
    """Seconds since 1970 of a timestamp column or subquery, as SQL (whole seconds on SQLite)."""
    if session.get_bind().dialect.name == "sqlite":
        return cast(func.strftime("%s", value), Integer)
    return extract("epoch", value)


def counts(session: Session) -> dict[str, int]:
    """Questions per status, every status present (0 when none), in the state machine's order."""
    found = dict(session.execute(select(Question.status, func.count()).group_by(Question.status)).all())
    return {s.value: int(found.get(s.value, 0)) for s in Status}


def waiting(session: Session, now: datetime) -> dict:
    """How many questions wait for a reviewer, and the oldest of them (by arrival) with its age."""
    statuses = [s.value for s in WAITING]
    n = session.execute(select(func.count()).select_from(Question).where(Question.status.in_(statuses))).scalar_one()
    first = session.execute(select(func.min(Question.id)).where(Question.status.in_(statuses))).scalar()
    oldest = None
    if first is not None:
        q = session.execute(select(Question.id, Question.status, Question.received_at, Question.subject,
                                   Question.claimed_by).where(Question.id == first)).one()
        oldest = dict(id=q.id, status=q.status, received_at=q.received_at, subject=q.subject,
                      claimed_by=q.claimed_by, age_seconds=max(0.0, (as_utc(now) - q.received_at).total_seconds()))
    return dict(count=int(n), oldest=oldest)


def _activity_kind():
    """Which chart line an event belongs to: a first draft, a reviewer's approval, or a sent answer."""
    drafted = and_(Event.to_status == Status.DRAFTED.value, Event.from_status == Status.PARSED.value)
    approved = and_(Event.to_status == Status.APPROVED.value, Event.action == "approve")
    sent = Event.to_status == Status.SENT.value
    kind = case((drafted, literal("drafted")), (approved, literal("approved")), else_=literal("sent"))
    return kind, or_(drafted, approved, sent)


def activity(session: Session, now: datetime, bucket: str = "hour") -> dict:
    """Drafted, approved and sent per hour over the last 24 hours, or per day over the last 30 days.

    Buckets are whole UTC hours or days; the last one is the current, unfinished one. Returns
    `starts` (bucket start times), `labels` and `series` {name: [count per bucket]}.
    """
    size, n = BUCKETS[bucket]
    now = as_utc(now)
    epoch_now = int(now.timestamp())
    end = epoch_now - epoch_now % size + size
    start = end - n * size
    start_at = datetime.fromtimestamp(start, timezone.utc)
    kind, wanted = _activity_kind()
    offset = _epoch(session, Event.at) - start
    index = offset / size if session.get_bind().dialect.name == "sqlite" else func.floor(offset / size)
    index = cast(index, Integer).label("i")
    rows = session.execute(
        select(kind.label("kind"), index, func.count())
        .where(Event.to_status.in_([Status.DRAFTED.value, Status.APPROVED.value, Status.SENT.value]),
               Event.at >= start_at, Event.at < datetime.fromtimestamp(end, timezone.utc), wanted)
        .group_by("kind", "i")).all()
    series = {name: [0] * n for name in ("drafted", "approved", "sent")}
    for name, i, count in rows:
        if 0 <= i < n:
            series[name][i] += int(count)
    starts = [start_at + timedelta(seconds=size * i) for i in range(n)]
    labels = [s.strftime("%H:00" if bucket == "hour" else "%m-%d") for s in starts]
    return dict(bucket=bucket, starts=starts, labels=labels, series=series,
                totals={name: sum(values) for name, values in series.items()})


def _decisions(since: datetime):
    return (Event.to_status.in_([Status.APPROVED.value, Status.REJECTED.value]),
            Event.action.in_(["approve", "reject"]), Event.at >= since)


def review_times(session: Session, now: datetime, days: int = 30) -> dict:
    """Percentiles (nearest rank) of review time, in seconds, over the decisions of the last `days`
    (the newest REVIEW_SAMPLE of them, which is plenty for a percentile and keeps this quick).

    `claim_to_decision`: from the reviewer's claim to approve/reject (time spent on the item).
    `drafted_to_decision`: from the draft being ready to approve/reject (time the asker waited on
    review). Each is {"n": decisions, "p50": .., "p90": .., "p95": ..}; None values when n is 0.
    """
    since = as_utc(now) - timedelta(days=days)
    start = aliased(Event)
    # The start is found through the question's own events (ix_event_question_id). to_status is
    # wrapped so that SQLite, which has no statistics, cannot pick ix_event_to_status_at instead
    # and read every earlier draft of every question for each decision.
    starts = {
        "claim_to_decision": start.action == "claim",
        "drafted_to_decision": and_(func.coalesce(start.to_status, "") == Status.DRAFTED.value,
                                    start.from_status == Status.PARSED.value),
    }
    result = {}
    recent = (select(Event.question_id.label("qid"), Event.at.label("at")).where(*_decisions(since))
              .order_by(Event.at.desc()).limit(REVIEW_SAMPLE).subquery())
    for name, which in starts.items():
        began = (select(func.max(start.at)).where(start.question_id == recent.c.qid, which,
                                                  start.at <= recent.c.at).scalar_subquery())
        took = (_epoch(session, recent.c.at) - _epoch(session, began)).label("s")
        durations = select(took).subquery()
        ranked = select(durations.c.s, func.row_number().over(order_by=durations.c.s).label("rn"),
                        func.count().over().label("n")).where(durations.c.s.is_not(None)).subquery()
        picks = [func.min(case((ranked.c.rn >= p / 100 * ranked.c.n, ranked.c.s))) for p in PERCENTILES]
        row = session.execute(select(func.max(ranked.c.n), *picks)).one()
        result[name] = dict(n=int(row[0] or 0), **{f"p{p}": None if v is None else float(v)
                                                   for p, v in zip(PERCENTILES, row[1:])})
    return result


def reviewers(session: Session, now: datetime, days: int = 30, top_reasons: int = 5) -> list[dict]:
    """Per reviewer over the last `days`: decisions, and the share approved as drafted, approved
    with edits, and rejected, with their most frequent rejection reasons. Busiest first."""
    since = as_utc(now) - timedelta(days=days)
    approve, reject = Event.action == "approve", Event.action == "reject"
    unchanged = and_(approve, Event.reason == APPROVED_AS_DRAFTED)
    rows = session.execute(
        select(Event.actor, func.count(), func.sum(case((approve, 1), else_=0)),
               func.sum(case((unchanged, 1), else_=0)), func.sum(case((reject, 1), else_=0)))
        .where(*_decisions(since)).group_by(Event.actor).order_by(func.count().desc(), Event.actor)
        .limit(MAX_PAGE)).all()
    rank = func.row_number().over(partition_by=Event.actor, order_by=(func.count().desc(), Event.reason))
    reasons = (select(Event.actor, Event.reason, func.count().label("n"), rank.label("rank"))
               .where(*_decisions(since), reject).group_by(Event.actor, Event.reason).subquery())
    by_actor: dict[str, list] = {}
    for actor, reason, n in session.execute(select(reasons.c.actor, reasons.c.reason, reasons.c.n)
                                            .where(reasons.c.rank <= top_reasons)
                                            .order_by(reasons.c.actor, reasons.c.rank)):
        by_actor.setdefault(actor, []).append(dict(reason=reason, count=int(n)))
    figures = []
    for actor, handled, approved, as_drafted, rejected in rows:
        handled, approved, as_drafted, rejected = int(handled), int(approved), int(as_drafted), int(rejected)
        edited = approved - as_drafted
        figures.append(dict(reviewer=actor, handled=handled, approved_unchanged=as_drafted,
                            approved_edited=edited, rejected=rejected,
                            share_unchanged=as_drafted / handled, share_edited=edited / handled,
                            share_rejected=rejected / handled, reasons=by_actor.get(actor, [])))
    return figures


def problems(session: Session, status: Status | str, after: int | None = None, limit: int = 50,
             newest_first: bool = False) -> dict:
    """Quarantined or failed questions with their reason and stage (and, for failed ones, the last
    send error), a page at a time: pass the `next_after` of one page as `after` for the next."""
    status = Status(status)
    if status not in (Status.QUARANTINED, Status.FAILED):
        raise ValueError(f"only quarantined and failed questions are listed, not {status}")
    limit = max(1, min(int(limit), MAX_PAGE))
    order = Question.id.desc() if newest_first else Question.id.asc()
    query = (select(Question.id, Question.received_at, Question.updated_at, Question.from_addr,
                    Question.subject, Question.stage, Question.reason, Question.attempts,
                    Reply.last_error, Reply.send_attempts, Reply.failed_at)
             .outerjoin(Reply, and_(Reply.question_id == Question.id, Reply.purpose == "answer"))
             .where(Question.status == status.value).order_by(order).limit(limit + 1))
    if after is not None:
        query = query.where(Question.id < after if newest_first else Question.id > after)
    rows = session.execute(query).all()
    items = [dict(row._mapping) for row in rows[:limit]]
    return dict(items=items, next_after=items[-1]["id"] if len(rows) > limit else None)


def quarantined(session: Session, after: int | None = None, limit: int = 50, newest_first: bool = False) -> dict:
    return problems(session, Status.QUARANTINED, after, limit, newest_first)


def failed(session: Session, after: int | None = None, limit: int = 50, newest_first: bool = False) -> dict:
    return problems(session, Status.FAILED, after, limit, newest_first)


# What the screen holds back and the settings that decide it: (status it leaves the message in,
# how its reason begins, setting). Counted from the audit trail through ix_event_to_status_at.
HELD_BACK = {
    "per_sender": (Status.IGNORED, rules.PER_SENDER_LIMIT, "screen.max_per_sender_per_hour"),
    "overall": (Status.QUARANTINED, rules.GLOBAL_LIMIT, "screen.max_per_hour"),
    "sender_auth": (Status.QUARANTINED, rules.SENDER_AUTH, "screen.sender_auth"),
}


def held_back(session: Session, now: datetime, limit: int = 50) -> dict:
    """How many messages the rate limits (and the sender check) held back in the last hour and the
    last 24 hours, per kind, and the newest `limit` of them with the sender redacted and the
    status they have now (an operator may have requeued them since)."""
    now = as_utc(now)
    day, hour = now - timedelta(days=1), now - timedelta(hours=1)
    kind = case(*[(and_(Event.to_status == status.value, Event.reason.startswith(prefix, autoescape=True)),
                   literal(name)) for name, (status, prefix, _setting) in HELD_BACK.items()], else_=literal(""))
    window = (Event.to_status.in_([Status.IGNORED.value, Status.QUARANTINED.value]), Event.at >= day, kind != "")
    found = {name: (int(n), int(recent or 0)) for name, n, recent in session.execute(
        select(kind.label("kind"), func.count(), func.sum(case((Event.at >= hour, 1), else_=0)))
        .where(*window).group_by("kind")).all()}
    counts = {name: dict(setting=setting, day=found.get(name, (0, 0))[0], hour=found.get(name, (0, 0))[1])
              for name, (_status, _prefix, setting) in HELD_BACK.items()}
    rows = session.execute(
        select(Event.at, Event.question_id, Event.reason, kind.label("kind"), Question.from_addr, Question.status)
        .join(Question, Question.id == Event.question_id).where(*window)
        .order_by(Event.at.desc(), Event.id.desc()).limit(max(1, min(int(limit), MAX_PAGE)))).all()
    items = [dict(at=r.at, id=r.question_id, reason=r.reason, kind=r.kind, sender=redact(r.from_addr) or None,
                  status=r.status) for r in rows]
    return dict(counts=counts, items=items)


def overview(session: Session, now: datetime, days: int = 30, charts: bool = True) -> dict:
    """Everything the operator page shows, in one call (about a dozen indexed queries).

    With `charts`, also "charts": {"hourly", "daily"}: SVG strings with every label escaped.
    """
    now = as_utc(now)
    per_status = counts(session)
    body = dict(now=now, counts=per_status, total=sum(per_status.values()), waiting=waiting(session, now),
                hourly=activity(session, now, "hour"), daily=activity(session, now, "day"),
                review_times=review_times(session, now, days), reviewers=reviewers(session, now, days),
                quarantined=quarantined(session), failed=failed(session), service=servicelog.summary(session),
                held_back=held_back(session, now))
    if charts:
        from .charts import bar_chart, line_chart

        hourly, daily = body["hourly"], body["daily"]
        body["charts"] = dict(
            hourly=bar_chart(hourly["labels"], hourly["series"], "Drafted, approved and sent per hour, last 24 hours (UTC)"),
            daily=line_chart(daily["labels"], daily["series"], "Drafted, approved and sent per day, last 30 days (UTC)"))
    return body
