"""In-memory index of which codes exist, used by the code finder to decide what is a code."""
from __future__ import annotations

import bisect
from collections.abc import Iterable

CPT = "CPT"
HCPCS = "HCPCS"
ICD10CM = "ICD-10-CM"
SYSTEMS = (CPT, HCPCS, ICD10CM)


def undot(code: str) -> str:
    """'M54.16' -> 'M5416'; codes are compared undotted and upper case."""
    return code.replace(".", "").upper()


def dot_icd(code: str) -> str:
    """'M5416' -> 'M54.16'; ICD-10-CM codes put the dot after the third character."""
    code = undot(code)
    return code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"


class CodeIndex:
    """Sets of known codes per system, with ordered lists for range expansion.

    CPT holds Category I, II and III codes; ICD-10-CM codes are kept in their dotted form.
    Building one from 100,000 codes takes a fraction of a second and about 10 MB.
    """

    def __init__(self, cpt: Iterable[str] = (), hcpcs: Iterable[str] = (), icd: Iterable[str] = ()):
        self._codes: dict[str, frozenset[str]] = {
            CPT: frozenset(c.upper() for c in cpt),
            HCPCS: frozenset(c.upper() for c in hcpcs),
        }
        # ICD-10-CM: look up by the undotted form, answer with the dotted one.
        self._icd: dict[str, str] = {undot(c): dot_icd(c) for c in icd}
        self._codes[ICD10CM] = frozenset(self._icd.values())
        self._sorted = {system: sorted(codes) for system, codes in self._codes.items()}

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str]]) -> "CodeIndex":
        """Build from (system, code) pairs, as read from the Code table."""
        by_system: dict[str, list[str]] = {s: [] for s in SYSTEMS}
        for system, code in rows:
            by_system.setdefault(system, []).append(code)
        return cls(by_system[CPT], by_system[HCPCS], by_system[ICD10CM])

    def has(self, system: str, code: str) -> bool:
        if system == ICD10CM:
            return undot(code) in self._icd
        return code.upper() in self._codes.get(system, frozenset())

    def icd(self, token: str) -> str | None:
        """The dotted ICD-10-CM code for a token written with or without the dot, any case."""
        return self._icd.get(undot(token))

    def between(self, system: str, lo: str, hi: str) -> list[str]:
        """Known codes of one system from lo to hi inclusive, in order."""
        codes = self._sorted.get(system, [])
        lo, hi = lo.upper(), hi.upper()
        return codes[bisect.bisect_left(codes, lo):bisect.bisect_right(codes, hi)]

    def __len__(self) -> int:
        return sum(len(c) for c in self._codes.values())
