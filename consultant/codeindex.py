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


def _dotted(key: str) -> str:
    """dot_icd of an undotted, upper-case key (what undot made)."""
    return key if len(key) <= 3 else f"{key[:3]}.{key[3:]}"


def _undotted(codes: list[str]) -> frozenset[str]:
    """undot of every code. A table's 74,000 and more ICD-10-CM codes, joined into one string, take
    a few passes in C instead of a function call each (no code has a line break: then the joined
    string splits back into as many)."""
    text = "\n".join(codes)
    if codes and text.count("\n") == len(codes) - 1:
        return frozenset(text.replace(".", "").upper().split("\n"))
    return frozenset(undot(c) for c in codes)


class _Sorted(dict):
    """The ordered codes of a system (for ranges), sorted the first time a range needs them."""

    def __init__(self, index: CodeIndex) -> None:
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
        # ICD-10-CM: looked up by the undotted form; the dotted form answered follows from it.
        self._icd: frozenset[str] = _undotted(list(icd))
        self._sorted: dict[str, list[str]] = _Sorted(self)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str]]) -> CodeIndex:
        """Build from (system, code) pairs, as read from the Code table."""
        by_system: dict[str, list[str]] = {s: [] for s in SYSTEMS}
        for system, code in rows:
            by_system.setdefault(system, []).append(code)
        return cls(by_system[CPT], by_system[HCPCS], by_system[ICD10CM])

    def codes(self, system: str) -> frozenset[str]:
        """Every known code of one system (ICD-10-CM dotted); empty for a system we do not index."""
        if system == ICD10CM:
            if ICD10CM not in self._codes:
                self._codes[ICD10CM] = frozenset(map(_dotted, self._icd))
            return self._codes[ICD10CM]
        return self._codes.get(system, frozenset())

    def has(self, system: str, code: str) -> bool:
        if system == ICD10CM:
            return undot(code) in self._icd
        return code.upper() in self._codes.get(system, frozenset())

    def icd(self, token: str) -> str | None:
        """The dotted ICD-10-CM code for a token written with or without the dot, any case."""
        key = undot(token)
        return _dotted(key) if key in self._icd else None

    def between(self, system: str, lo: str, hi: str) -> list[str]:
        """Known codes of one system from lo to hi inclusive, in order."""
        codes = self._sorted[system] if system in SYSTEMS else []
        lo, hi = lo.upper(), hi.upper()
        return codes[bisect.bisect_left(codes, lo):bisect.bisect_right(codes, hi)]

    def __len__(self) -> int:
        return len(self._codes[CPT]) + len(self._codes[HCPCS]) + len(self.codes(ICD10CM))
