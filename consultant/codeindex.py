"""In-memory index of which codes exist, used by the code finder to decide what is a code."""
from __future__ import annotations

import bisect
import re
from collections.abc import Iterable

CPT = "CPT"
HCPCS = "HCPCS"
ICD10CM = "ICD-10-CM"
SYSTEMS = (CPT, HCPCS, ICD10CM)

# ICD-10-CM codes as the tables keep them: upper case, dotted after the third character. A list of
# them, one a line, is already what dot_icd would make of each, so the index can skip the work.
_DOTTED = r"(?:[0-9A-Z]{3}(?:\.[0-9A-Z]+)?|[0-9A-Z]{0,2})"
_DOTTED_LINES = re.compile(rf"(?:{_DOTTED}\n)*{_DOTTED}")


def undot(code: str) -> str:
    """'M54.16' -> 'M5416'; codes are compared undotted and upper case."""
    return code.replace(".", "").upper()


def dot_icd(code: str) -> str:
    """'M5416' -> 'M54.16'; ICD-10-CM codes put the dot after the third character."""
    code = undot(code)
    return code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"


def _icd_map(codes: list[str]) -> dict[str, str]:
    """{undotted: dotted} for ICD-10-CM codes written any way. The codes of a table (74,000 and
    more) are already dotted and upper case: then it is made by a few passes over one string
    instead of two function calls per code."""
    text = "\n".join(codes)
    if text.count("\n") == len(codes) - 1 and _DOTTED_LINES.fullmatch(text):
        return dict(zip(text.replace(".", "").split("\n"), codes)) if codes else {}
    return {undot(c): dot_icd(c) for c in codes}


class _Sorted(dict):
    """The ordered codes of a system (for ranges), sorted the first time a range needs them."""

    def __init__(self, index: "CodeIndex") -> None:
        super().__init__()
        self._index = index

    def __missing__(self, system: str) -> list[str]:
        if system not in self._index._codes and system != ICD10CM:
            raise KeyError(system)
        codes = self[system] = sorted(self._index.codes(system))
        return codes


class CodeIndex:
    """Sets of known codes per system, with ordered lists for range expansion.

    CPT holds Category I, II and III codes; ICD-10-CM codes are kept in their dotted form.
    Building one from 100,000 codes takes a few tens of milliseconds and about 10 MB.
    """

    def __init__(self, cpt: Iterable[str] = (), hcpcs: Iterable[str] = (), icd: Iterable[str] = ()):
        self._codes: dict[str, frozenset[str]] = {
            CPT: frozenset(c.upper() for c in cpt),
            HCPCS: frozenset(c.upper() for c in hcpcs),
        }
        # ICD-10-CM: look up by the undotted form, answer with the dotted one.
        self._icd: dict[str, str] = _icd_map(list(icd))
        self._sorted: dict[str, list[str]] = _Sorted(self)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str]]) -> "CodeIndex":
        """Build from (system, code) pairs, as read from the Code table."""
        by_system: dict[str, list[str]] = {s: [] for s in SYSTEMS}
        for system, code in rows:
            by_system.setdefault(system, []).append(code)
        return cls(by_system[CPT], by_system[HCPCS], by_system[ICD10CM])

    def codes(self, system: str) -> frozenset[str]:
        """Every known code of one system (ICD-10-CM dotted); empty for a system we do not index."""
        if system == ICD10CM:
            if ICD10CM not in self._codes:
                self._codes[ICD10CM] = frozenset(self._icd.values())
            return self._codes[ICD10CM]
        return self._codes.get(system, frozenset())

    def has(self, system: str, code: str) -> bool:
        if system == ICD10CM:
            return undot(code) in self._icd
        return code.upper() in self._codes.get(system, frozenset())

    def icd(self, token: str) -> str | None:
        """The dotted ICD-10-CM code for a token written with or without the dot, any case."""
        return self._icd.get(undot(token))

    def between(self, system: str, lo: str, hi: str) -> list[str]:
        """Known codes of one system from lo to hi inclusive, in order."""
        codes = self._sorted[system] if system in SYSTEMS else []
        lo, hi = lo.upper(), hi.upper()
        return codes[bisect.bisect_left(codes, lo):bisect.bisect_right(codes, hi)]

    def __len__(self) -> int:
        return len(self._codes[CPT]) + len(self._codes[HCPCS]) + len(self.codes(ICD10CM))
