"""Checks on the codes asked in one question: NCCI pairs, MUE units, fee-schedule modifiers, status.

Each warning carries the codes involved, a plain sentence for the asker, and the release the fact
came from for the reviewer. Data sets that are not loaded are named in `missing`, so the reviewer
knows what was not checked (the asker is not told).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date

from sqlalchemy import bindparam, func, or_, select
from sqlmodel import Session

from .codeindex import ICD10CM
from .codetables import FeeRule, Mue, PtpEdit, Release
from .extract import FoundCode
from .lookup import CodeFacts

X_MODIFIERS = {"59", "XE", "XS", "XP", "XU"}
INDICATOR = {
    "0": "no modifier can unbundle this pair",
    "1": "a modifier such as 59 or XE/XS/XP/XU may unbundle it when the record shows a distinct service",
    "9": "the edit is not applicable",
}
# Fee-schedule indicator values under which a modifier is not paid, and why (CMS PFS RVU file).
MODIFIER_RULES = {
    "50": ("bilat_surg", {"0": "bilateral payment does not apply to this code",
                          "2": "the code is already bilateral, so 50 does not apply",
                          "9": "the bilateral concept does not apply to this code"}),
    "51": ("mult_proc", {"0": "no multiple-procedure reduction applies, so 51 is not used",
                         "9": "the multiple-procedure concept does not apply"}),
    "62": ("co_surg", {"0": "co-surgeons are not allowed", "9": "the co-surgeon concept does not apply"}),
    "66": ("team_surg", {"0": "a surgical team is not allowed", "9": "the team concept does not apply"}),
    "80": ("asst_surg", {"1": "an assistant surgeon is not paid", "9": "the assistant concept does not apply"}),
    "82": ("asst_surg", {"1": "an assistant surgeon is not paid", "9": "the assistant concept does not apply"}),
}
_DOS = re.compile(r"(?i)\b(?:DOS|date\s+of\s+service|service\s+date)\s*(?:was|is|of|on|:|=|-)?\s*"
                  r"(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})\b|\b(?:DOS|date\s+of\s+service)\s*(?:is|:)?\s*"
                  r"(\d{4})-(\d{2})-(\d{2})\b")


@dataclass
class Alert:
    kind: str  # pair, units, modifier, status
    codes: list[str]
    message: str  # a plain sentence for the asker
    source: str | None = None  # the release, for the reviewer
    detail: dict = field(default_factory=dict)


@dataclass
class Checks:
    date_of_service: str
    dos_from_text: bool
    warnings: list[Alert] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # data sets not loaded: for the reviewer only

    def as_json(self) -> dict:
        return dict(date_of_service=self.date_of_service, dos_from_text=self.dos_from_text,
                    warnings=[asdict(w) for w in self.warnings], missing=self.missing)


def date_of_service(text: str, default: date) -> tuple[date, bool]:
    """The date of service the question gives ("DOS 03/14/2025", "date of service 2025-03-14"),
    or `default` (the day the question arrived)."""
    # The pattern is tried at every position of the text (case-insensitive, it has no fixed
    # start to skip ahead to): 70 us a question. Each of its forms holds "dos" or "date".
    folded = (text or "").casefold()
    if "dos" not in folded and "date" not in folded:
        return default, False
    return _first_date(text or "", default)


def _first_date(text: str, default: date) -> tuple[date, bool]:
    for match in _DOS.finditer(text):
        try:
            if match[1]:
                year = int(match[3]) + (2000 if len(match[3]) == 2 else 0)
                return date(year, int(match[1]), int(match[2])), True
            return date(int(match[4]), int(match[5]), int(match[6])), True
        except ValueError:
            continue  # 02/31/2025 is not a date
    return default, False


CHECKED_KINDS = ("ncci-ptp", "mue", "pfs-rvu")
_IN_FORCE: dict[tuple, dict[str, dict[int, str]]] = {}


def releases_in_force(session: Session) -> dict[str, dict[int, str]]:
    """For PTP, MUE and the fee schedule, {release id: name} of the releases in force (see
    importers.in_force); empty when the kind is not loaded. Cached until a release is loaded or
    replaced, since finding them means a scan of the edit tables."""
    from .importers.store import in_force

    marker = tuple(session.execute(select(func.count(Release.id), func.max(Release.id))).one())
    key = (str(session.get_bind().url), marker)
    if key not in _IN_FORCE:
        if len(_IN_FORCE) > 64:
            _IN_FORCE.clear()
        _IN_FORCE[key] = {kind: {r.id: r.name for r in in_force(session, kind)} for kind in CHECKED_KINDS}
    return _IN_FORCE[key]


# The edit tables' rows as plain columns (every column, as the mapped classes read them), with
# statements built once: per question, building them and making objects of the rows cost more
# than the queries.
def _released(table, *where):
    return select(*table.__table__.c).where(table.release_id.in_(bindparam("releases", expanding=True)), *where)


_PAIRS = _released(PtpEdit, PtpEdit.column1.in_(bindparam("first", expanding=True)),
                   PtpEdit.column2.in_(bindparam("second", expanding=True)), PtpEdit.column1 != PtpEdit.column2,
                   or_(PtpEdit.effective.is_(None), PtpEdit.effective <= bindparam("dos")),
                   or_(PtpEdit.deletion.is_(None), PtpEdit.deletion > bindparam("dos")))
_LIMITS = _released(Mue, Mue.code.in_(bindparam("codes", expanding=True)))
_FEE_RULES = _released(FeeRule, FeeRule.code.in_(bindparam("codes", expanding=True)),
                       or_(FeeRule.modifier.is_(None), FeeRule.modifier == ""))


def pair_warnings(session: Session, codes: list[FoundCode], dos: date, releases: dict[int, str]) -> list[Alert]:
    procedures = [c for c in codes if c.system != ICD10CM]
    by_code = {c.code: c for c in procedures}
    if len(by_code) < 2 or not releases:
        return []
    out = []
    for edit in session.connection().execute(_PAIRS, dict(releases=list(releases), first=list(by_code),
                                                          second=list(by_code), dos=dos)):
        release = releases[edit.release_id]
        col2 = by_code[edit.column2]
        asked_mod = sorted(X_MODIFIERS & set(col2.modifiers) | X_MODIFIERS & set(by_code[edit.column1].modifiers))
        if edit.modifier_indicator == "0":
            message = (f"{edit.column2} is bundled into {edit.column1} under the NCCI edits: the two are not "
                       f"paid together on the same day, and no modifier changes that (indicator 0).")
        elif edit.modifier_indicator == "1":
            message = (f"{edit.column2} is bundled into {edit.column1} under the NCCI edits. It can be paid "
                       f"separately only with a modifier such as 59 or XE/XS/XP/XU on {edit.column2}, and only "
                       f"when the record shows a distinct service: a separate session, site, lesion or "
                       f"injury (indicator 1).")
            if asked_mod:
                message += f" You mentioned {', '.join(asked_mod)}; it belongs on {edit.column2} if the record supports it."
        else:
            message = (f"An NCCI edit lists {edit.column1} with {edit.column2}, but it is marked not applicable "
                       f"(indicator 9), so it does not stop the pair.")
        out.append(Alert("pair", [edit.column1, edit.column2], message, release, dict(
            indicator=edit.modifier_indicator, meaning=INDICATOR.get(edit.modifier_indicator, ""),
            setting=edit.setting, effective=str(edit.effective) if edit.effective else None,
            deletion=str(edit.deletion) if edit.deletion else None, rationale=edit.rationale)))
    return out


def unit_warnings(session: Session, codes: list[FoundCode], releases: dict[int, str]) -> list[Alert]:
    counted = {c.code: c.units for c in codes if c.system != ICD10CM and c.units > 1}
    if not counted:
        return []
    out = []
    for mue in session.connection().execute(_LIMITS, dict(releases=list(releases), codes=list(counted))):
        release = releases[mue.release_id]
        units = counted[mue.code]
        if units > mue.units:
            per = "per claim line" if (mue.adjudication or "").startswith("1") else "per day"
            out.append(Alert("units", [mue.code], (
                f"{units} units of {mue.code} is more than the {mue.units} the MUE allows {per} "
                f"({mue.setting}); the extra units are usually denied unless documented and appealed."),
                release, dict(asked=units, limit=mue.units, adjudication=mue.adjudication,
                              setting=mue.setting, rationale=mue.rationale)))
    return out


def modifier_warnings(session: Session, codes: list[FoundCode], releases: dict[int, str]) -> list[Alert]:
    wanted = {c.code: [m for m in c.modifiers if m in MODIFIER_RULES] for c in codes if c.system != ICD10CM}
    wanted = {k: v for k, v in wanted.items() if v}
    if not wanted:
        return []
    if not releases:
        return []
    rules = session.connection().execute(_FEE_RULES, dict(releases=list(releases), codes=list(wanted)))
    out = []
    for rule in rules:
        for modifier in wanted[rule.code]:
            column, refusals = MODIFIER_RULES[modifier]
            value = (getattr(rule, column) or "").strip()
            if value in refusals:
                out.append(Alert("modifier", [rule.code], (
                    f"Modifier {modifier} on {rule.code}: the Medicare fee schedule says {refusals[value]}."),
                    releases[rule.release_id], dict(modifier=modifier, indicator=column, value=value)))
    return out


def status_warnings(codes: list[FoundCode], facts: list[CodeFacts], dos: date) -> list[Alert]:
    out = []
    for found, fact in zip(codes, facts):
        if not fact.known:
            continue
        end, start = fact.end_date, fact.effective
        if fact.status == "deleted" or (end and end < dos):
            when = f" after {end:%B %-d, %Y}" if end else ""
            out.append(Alert("status", [found.code], (
                f"{found.code} was deleted{when} and cannot be billed for a {dos:%Y} date of service."),
                fact.source, dict(end_date=str(end) if end else None)))
        elif start and start > dos:
            out.append(Alert("status", [found.code], (
                f"{found.code} takes effect on {start:%B %-d, %Y}, after the date of service."),
                fact.source, dict(effective=str(start))))
    return out


LOADED_KINDS = {"ncci-ptp": "NCCI PTP edits, so code pairs were not checked",
                "mue": "MUE limits, so units were not checked",
                "pfs-rvu": "the fee schedule (PFS RVU file), so modifiers 50/51/62/66/80 were not checked"}


def run(session: Session, asked: list[FoundCode], facts: list[CodeFacts], text: str, received: date,
        releases: dict[str, dict[int, str]] | None = None) -> Checks:
    """Every check for one question; `facts` line up with `asked`; `releases` are those in force if
    the caller has them (a batch looks them up once), else they are looked up here."""
    dos, from_text = date_of_service(text, received)
    checks = Checks(date_of_service=dos.isoformat(), dos_from_text=from_text)
    releases = releases if releases is not None else releases_in_force(session)
    checks.missing = [f"No {what}." for kind, what in LOADED_KINDS.items() if not releases[kind]]
    checks.warnings += status_warnings(asked, facts, dos)
    checks.warnings += pair_warnings(session, asked, dos, releases["ncci-ptp"])
    checks.warnings += unit_warnings(session, asked, releases["mue"])
    checks.warnings += modifier_warnings(session, asked, releases["pfs-rvu"])
    return checks
