"""Everything known about one code, each fact with the release it came from (codes show, the web)."""
from __future__ import annotations

from dataclasses import asdict
from datetime import date

from sqlalchemy import func, or_, select
from sqlmodel import Session

from .checks import INDICATOR, releases_in_force
from .codetables import Descriptor, FeeRule, Mue, PtpEdit, Release
from .lookup import CodeFacts, Lookup
from .modifiers import meaning

PAIR_SAMPLE = 12  # PTP pairs listed per side; the count covers them all


def everything(lookup: Lookup, facts: CodeFacts, today: date | None = None) -> dict:
    """The facts of the Lookup plus what the licensed data sets in force say: every descriptor,
    PTP edits naming the code (counts and the first few), MUE limits and fee-schedule indicators."""
    session = lookup.session
    data = asdict(facts)
    data["starter_note"] = ("Title and description are CaseConsultant starter data in our own words, "
                            "not licensed descriptors." if facts.starter else None)
    data["descriptors"] = _descriptors(session, facts)
    data["ptp"] = _ptp(session, facts.code, today or date.today())
    data["mue"] = _mue(session, facts.code)
    data["fee_schedule"] = _fees(session, facts.code)
    return data


def _descriptors(session: Session, facts: CodeFacts) -> list[dict]:
    rows = session.execute(select(Descriptor, Release.name).join(Release, Release.id == Descriptor.release_id)
                           .where(Descriptor.system == facts.system, Descriptor.code == facts.code)
                           .order_by(Descriptor.release_id.desc(), Descriptor.kind)).all()
    return [dict(kind=d.kind, text=d.text, effective=_iso(d.effective), end_date=_iso(d.end_date),
                 action=d.action, source=name) for d, name in rows]


def _ptp(session: Session, code: str, today: date) -> dict:
    """Edits in force naming the code, per side: as column 1 (others bundle into it) and as
    column 2 (it bundles into others)."""
    releases = releases_in_force(session)["ncci-ptp"]
    out: dict = dict(loaded=bool(releases), as_column1=0, as_column2=0, pairs=[])
    if not releases:
        return out
    live = (PtpEdit.release_id.in_(releases), or_(PtpEdit.deletion.is_(None), PtpEdit.deletion > today))
    for side, mine, other in (("as_column1", PtpEdit.column1, PtpEdit.column2),
                              ("as_column2", PtpEdit.column2, PtpEdit.column1)):
        out[side] = session.execute(select(func.count()).where(mine == code, *live)).scalar_one()
        for edit in session.execute(select(PtpEdit).where(mine == code, *live)
                                    .order_by(other).limit(PAIR_SAMPLE)).scalars():
            out["pairs"].append(dict(column1=edit.column1, column2=edit.column2, setting=edit.setting,
                                     indicator=edit.modifier_indicator,
                                     meaning=INDICATOR.get(edit.modifier_indicator, ""),
                                     effective=_iso(edit.effective), deletion=_iso(edit.deletion),
                                     rationale=edit.rationale, source=releases[edit.release_id]))
    return out


def _mue(session: Session, code: str) -> list[dict]:
    releases = releases_in_force(session)["mue"]
    if not releases:
        return []
    rows = session.execute(select(Mue).where(Mue.code == code, Mue.release_id.in_(releases))
                           .order_by(Mue.setting)).scalars()
    return [dict(setting=m.setting, units=m.units, adjudication=m.adjudication, rationale=m.rationale,
                 source=releases[m.release_id]) for m in rows]


def _fees(session: Session, code: str) -> list[dict]:
    releases = releases_in_force(session)["pfs-rvu"]
    if not releases:
        return []
    rows = session.execute(select(FeeRule).where(FeeRule.code == code, FeeRule.release_id.in_(releases))
                           .order_by(FeeRule.modifier.is_not(None), FeeRule.modifier)).scalars()
    return [dict(modifier=f.modifier or None, modifier_meaning=meaning(f.modifier) if f.modifier else None,
                 status_code=f.status_code, global_days=f.global_days, mult_proc=f.mult_proc,
                 bilat_surg=f.bilat_surg, asst_surg=f.asst_surg, co_surg=f.co_surg, team_surg=f.team_surg,
                 source=releases[f.release_id]) for f in rows]


def _iso(value) -> str | None:
    return value.isoformat() if value else None
