"""Everything the service works out about the codes of one question, shared by draft and inspect."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from . import checks as checks_module
from .extract import Findings
from .lookup import CodeFacts, Lookup

SUGGESTIONS = 5


@dataclass
class Analysis:
    facts: list[CodeFacts]  # line up with findings.asked()
    checks: checks_module.Checks
    suggestions: list[dict] = field(default_factory=list)

    def warnings(self) -> list[dict]:
        return self.checks.as_json()["warnings"]

    def as_json(self) -> dict:
        """What the reviewer sees beside the draft: each fact with the release it came from."""
        return dict(self.checks.as_json(), suggestions=self.suggestions, sources=[
            dict(code=f.code, system=f.system, known=f.known, source=f.source, starter=f.starter,
                 descriptor_source=f.descriptor_source, status=f.status) for f in self.facts])


def analyse(lookup: Lookup, findings: Findings, text: str, received: date,
            releases: dict | None = None) -> Analysis:
    """Facts for every asked code, the pair/unit/modifier/status checks on the date of service, and,
    when the question gives no code, suggestions found by words for the reviewer to confirm.
    `releases` are the releases in force (consultant.checks.releases_in_force) if the caller has
    them already."""
    from .textsearch import suggest

    asked = findings.asked()
    facts = [lookup.facts(f.system, f.code) for f in asked]
    checks = checks_module.run(lookup.session, asked, facts, text, received, releases)
    suggestions = []
    if not asked:
        suggestions = [dict(code=h.code, system=h.system, title=h.title, score=round(h.score, 3))
                       for h in suggest(lookup.session, text, limit=SUGGESTIONS)]
    return Analysis(facts, checks, suggestions)
