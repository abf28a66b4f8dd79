"""Find the CPT, HCPCS Level II and ICD-10-CM codes (with modifiers, ranges and units) in a question."""
from __future__ import annotations

import re
import weakref
from dataclasses import dataclass

from consultant import extract_context as ctx
from consultant.codeindex import CPT, HCPCS, ICD10CM, CodeIndex, dot_icd

# A wider "range" is more likely two unrelated codes joined by a dash than a family of codes.
MAX_RANGE = 200
# Bounds the work after one code even on adversarial input ("99213-25-25-25-...").
MAX_TAIL_STEPS = 16

_ODD_SPACES = ("\u00a0", "\u2007", "\u202f")
# The characters a TAIL match can start with: after any other character a code has no tail.
_TAIL_FIRST = frozenset(" \txX×(,-–—/&+TtWwMmAaPp0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(slots=True)
class FoundCode:
    code: str  # CPT/HCPCS upper case ("99213", "3074F", "J1100"); ICD-10-CM dotted ("M54.16")
    system: str  # CPT (Category I, II, III) | HCPCS (Level II) | ICD-10-CM
    quoted: bool  # True only when the code appears only in quoted history
    modifiers: list[str]  # attached to this code, upper case, in order, no duplicates
    units: int  # 1 unless the text gives units ("J1100 x2")
    known: bool  # index.has(system, code)
    spans: list[tuple[int, int]]  # each mention in the new text; empty when only quoted
    from_range: str | None = None  # "62302-62305" when the code came from expanding a range


@dataclass
class Findings:
    codes: list[FoundCode]  # in order of first appearance, one entry per code
    modifiers: list[str]  # mentioned in the new text but attached to no code there

    def asked(self) -> list[FoundCode]:
        return [c for c in self.codes if not c.quoted]

    def quoted(self) -> list[FoundCode]:
        return [c for c in self.codes if c.quoted]


def find_codes(text: str, index: CodeIndex, quoted_text: str = "") -> Findings:
    """The codes in `text` (asked) and those only in `quoted_text` (quoted), with their details.

    Codes come first from the new text in order of appearance, then the quoted-only ones. A code in
    both is asked, and its modifiers and units come from the new text only.
    """
    ref, memo = _memo  # one read, so two threads never mix one index's answers with another's
    if ref is None or ref() is not index:
        memo = _memo_for(index)
    asked = _Scan(index, False, memo)
    asked.run(text or "")
    found = asked.codes
    codes = list(found.values())
    if quoted_text:
        history = _Scan(index, True, memo)
        history.run(quoted_text)
        codes += [code for key, code in history.codes.items() if key not in found]
    if not asked.mentioned:
        return Findings(codes, [])
    attached = {mod for code in found.values() for mod in code.modifiers}
    return Findings(codes, [mod for mod in asked.mentioned if mod not in attached])


# What a token reads as, per code index: {token: (code, system, known, key) or None}, one dict for
# tokens after a diagnosis label and one for the others. A token's shape fixes how the scan reads it
# (five digits, four digits and F/T, a letter and more, with or without a dot), so the token alone
# is the key. Only one index is remembered (the worker has one at a time; a new release makes a new
# index) and each dict is emptied when it grows past _MEMO_SIZE, so hostile text cannot bloat it.
_MEMO_SIZE = 4096
_memo: tuple[weakref.ref | None, tuple[dict, dict]] = (None, ({}, {}))


def _memo_for(index: CodeIndex) -> tuple[dict, dict]:
    """Fresh memo dicts for a new index."""
    global _memo
    memo: tuple[dict, dict] = ({}, {})
    _memo = (weakref.ref(index), memo)
    return memo


def _shape(code: str) -> str:
    """'5' for five digits, 'F'/'T' for Category II/III, else the HCPCS letter: a range keeps one."""
    if code[0].isdigit():
        return "5" if code[4].isdigit() else code[4]
    return code[0]


def _number(code: str) -> int:
    return int(code[1:] if code[0].isalpha() else code if code[4].isdigit() else code[:4])


# What each MASTER group name means; None for the traps (phones, dates, times, ZIP+4, amounts).
_KIND = {name: (None if kind in ctx.TRAPS else kind) for name, kind in ctx.KINDS.items()}
_MISSING = object()
_HOT: tuple = ()


def _hot() -> tuple:
    """What _Scan.run reads on every call, in one tuple; made on the first call, which compiles
    the patterns (extract_context leaves them to their first use)."""
    global _HOT
    _HOT = (ctx.MASTER.scanner, _KIND, ctx.LEFT_AT, ctx.LEFT_AFTER_BLANKS, ctx.LEFT_WORDS, ctx.LEFT_CONTEXT.match,
            ctx.LEFT_WINDOW, _TAIL_FIRST, ctx.TAIL.match)
    return _HOT


class _Scan:
    """One pass over one text, gathering one FoundCode per code and the modifiers mentioned."""

    __slots__ = ("index", "quoted", "memo", "codes", "mentioned", "_units_given")

    def __init__(self, index: CodeIndex, quoted: bool, memo: tuple[dict, dict]):
        self.index = index
        self.quoted = quoted
        self.memo = memo
        self.codes: dict[tuple[str, str], FoundCode] = {}
        self.mentioned: dict[str, None] = {}  # an ordered set
        self._units_given: set[tuple[str, str]] = set()

    def run(self, text: str) -> None:
        # Text converted from HTML is full of no-break spaces; read them as spaces (same length,
        # so every offset still points into the original text).
        if not text.isascii():
            for space in _ODD_SPACES:
                if space in text:
                    text = text.replace(space, " ")
        # The loop reads each candidate the master pattern finds. The common case (a code with
        # nothing before or after it that matters) is handled inline, with locals only; the rest
        # goes to methods. Every step keeps the order of the checks of the plain reading.
        scanner, kinds, left_at, after_blanks, left_words, left_context, window, tail_first, tail = _HOT or _hot()
        plain_memo, diag_memo = self.memo
        codes, quoted, units_given = self.codes, self.quoted, self._units_given
        size = len(text)
        backwards = None  # the text reversed, made when LEFT_CONTEXT first has to run
        # The scanner goes on where its last match ended, as search(text, end) would; where the
        # scan skips further (a tail, an identifier), a new one starts there.
        find = scanner(text).search
        pos = found_end = 0
        diag_end = -1  # where the last diagnosis-labelled code ended, for "Dx: M54.16, G89.29"
        while True:
            if pos != found_end:
                find = scanner(text, pos).search
            m = find()
            if m is None:
                return
            kind = kinds[m.lastgroup]
            start, pos = found_end = m.span()
            if kind is None:
                continue
            if kind == "icdd" or kind == "lett":
                start -= 1  # the match begins at the digit after the code's letter
            elif kind == "num2" and m.group() not in ctx.CPT_MODIFIERS:
                continue
            # What stands just before the candidate (label, "Dx", state, "$"...), read backwards.
            left = how = char = None
            if start:
                char = text[start - 1]
                if char == " " or char == "\t":
                    # Mostly an ordinary word stands in front ("bill 62303"): then no need.
                    before = text[start - 24 if start > 24 else 0:start].rstrip(" \t")
                    word = before[before.rfind(" ") + 1:].lower()  # lower() first: "İ" -> "i̇"
                    if word.isalnum() and word not in left_words:
                        pattern = None
                    else:  # the branches that can match after the blanks, or all of them
                        pattern = after_blanks.get(before[-1]) if before else left_context
                else:  # the branches that can start with this character ("\n", "(": none)
                    pattern = left_at.get(char)
                if pattern is not None:
                    if backwards is None:
                        backwards = text[::-1]
                    left = pattern(backwards, size - start, size - start + window)
                    if left is not None:
                        how = left.lastgroup
            if kind == "num2" or kind == "upmod":
                pos = self._modifier_mention(text, kind, start, pos, how)
                continue
            if how is not None:
                if how == "currency" or how == "label" or how == "hash":
                    pos = ctx.ID_REST.match(text, pos).end()  # all of "claim #62303-01"
                    continue
                # The state starts where the match ends in the reversed text.
                if how == "state" and ctx.is_zip(text, size - left.end(), text[start:pos]):
                    continue
            if char is not None and char not in " \n\t" and ctx.in_url_or_email(text, start):
                pos = ctx.ID_REST.match(text, pos).end()
                continue
            diag = how == "dx" or (diag_end >= 0 and ctx.LIST_SEP.match(text, diag_end).end() == start)
            token = text[start:pos]
            memo = diag_memo if diag else plain_memo
            found = memo.get(token, _MISSING)
            if found is _MISSING:
                found = self._read(kind, token, diag, memo)
            if found is None:
                continue
            if found[1] == ICD10CM:
                units = None
                diag_end = pos if diag else -1
            else:
                diag_end = -1
                units = (int(left["units"][::-1]) or None) if how == "units" else None
                after = text[pos:pos + 1]
                if after == " ":
                    after = text[pos + 1:pos + 2]  # after one space, what TAIL would look at
                if after in tail_first:
                    t = tail(text, pos)
                    if t is not None:
                        pos = self._code_with_tail(text, found, start, pos, units, t)
                        continue
            # A code with nothing attached: what _add does, inline.
            key = found[3]
            entry = codes.get(key)
            if entry is None:
                codes[key] = entry = FoundCode(found[0], found[1], quoted, [], 1, found[2],
                                               [] if quoted else [(start, pos)], None)
            else:
                entry.from_range = None  # also named on its own, not only through a range
                if not quoted:
                    entry.spans.append((start, pos))
            if units is not None and key not in units_given:
                entry.units = units  # the first mention that gives units decides
                units_given.add(key)

    def _read(self, kind: str, token: str, diag: bool, memo: dict):
        """_classify's answer with the FoundCode key appended, remembered in memo."""
        found = self._classify(kind, token, diag)
        if found is not None:
            found = (*found, (found[1], found[0]))
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[token] = found
        return found

    def _classify(self, kind: str, token: str, diag: bool) -> tuple[str, str, bool] | None:
        """(code, system, known) for a code-shaped token, or None when it is not taken as a code."""
        index = self.index
        if kind == "c5":
            # Category I codes run from 00100 to 99607; other five-digit numbers are no codes at all.
            return (token, CPT, index.has(CPT, token)) if "00100" <= token <= "99607" else None
        up = token.upper()
        if kind == "c4":
            if up[4] == "T" and up[0] != "0":  # every Category III code starts with 0
                return None
            return up, CPT, index.has(CPT, up)
        if token[0] == "v" and kind == "icdd":  # "v10.2" is a version, not external cause V10.2
            return None
        dotted = index.icd(up)
        if kind == "icdd":  # written with its dot: a code even when unknown
            return dotted or up, ICD10CM, dotted is not None
        if len(up) == 5 and up[1:].isdigit():
            # Letter + 4 digits is HCPCS or undotted ICD-10-CM ("A0471"): a diagnosis label decides,
            # then a known HCPCS code, then a known ICD code, then an unknown HCPCS code.
            hcpcs_shaped = up[0] in ctx.HCPCS_LETTERS
            if diag:
                return dotted or dot_icd(up), ICD10CM, dotted is not None
            if hcpcs_shaped and index.has(HCPCS, up):
                return up, HCPCS, True
            if dotted:
                return dotted, ICD10CM, True
            return (up, HCPCS, False) if hcpcs_shaped else None
        if up in ctx.LOOKALIKES:
            return (dotted, ICD10CM, True) if diag and dotted else None
        if dotted:
            return dotted, ICD10CM, True
        # Undotted unknown ICD-shaped tokens are mostly not codes ("R2D2"); after "Dx" they are.
        return (dot_icd(up), ICD10CM, False) if diag else None

    def _code_with_tail(self, text: str, found: tuple, start: int, pos: int, pre_units: int | None,
                        t: re.Match) -> int:
        """Add a CPT/HCPCS code (or a range) with its modifiers and units; returns where to go on.

        t is the first TAIL match after the code (the scan has made it already).
        """
        group = [(found, (start, pos))]
        label = None
        mods: list[str] = []
        units = None
        for step in range(MAX_TAIL_STEPS):
            if step:
                char = text[pos:pos + 1]
                if char == " ":
                    char = text[pos + 1:pos + 2]  # after one space, what the pattern would look at
                if char not in _TAIL_FIRST:
                    break  # cheaper than a TAIL match that cannot succeed
                t = ctx.TAIL.match(text, pos)
                if t is None:
                    break
            name = t.lastgroup
            what = ctx.TAIL_KINDS[name]
            if what == "range":
                expanded = self._range(text, found, (start, pos), t, name) if step == 0 else None
                if expanded is None:
                    break  # not a range: the scan will read the other end as a code of its own
                group, label = expanded
            elif what == "units":
                value = int(t[name] or ctx.DIGITS.search(t.group()).group())
                if units is not None or value < 1:
                    break
                units = value
            elif what == "mods":
                listed = [ctx.modifier_ok(tok, strict=False) for tok in ctx.MOD_IN_LIST.findall(t[name])]
                listed = [mod for mod in listed if mod]
                if not listed:
                    break
                mods.extend(listed)
            elif what == "joined":
                mod = ctx.modifier_ok(t[name], strict=True)
                if mod is not None:
                    self.mentioned.setdefault(mod)
                    pos = t.end()
                break
            else:  # one modifier: after a dash, a slash (only in a list, "RT/LT") or a space
                if what == "slash" and not mods:
                    break
                token = text[t.end() - 2:t.end()] if what == "space" else t[name]
                mod = ctx.modifier_ok(token, strict=what == "space")
                if mod is None:
                    break
                mods.append(mod)
            pos = t.end()
        for member, span in group:
            self._add(member, span, mods, units if units is not None else pre_units, label)
        return pos

    def _range(self, text: str, lo: tuple[str, str, bool], lo_span: tuple[int, int], t, name: str):
        """The codes of "62302-62305" with their spans, and the label, or None if it is no range."""
        if name == "range_to" and ctx.CHANGE_BEFORE.search(text, max(0, lo_span[0] - 40), lo_span[0]):
            return None
        token = t[name]
        kind = "c5" if token.isdigit() else "c4" if token[0].isdigit() else "lett"
        hi = self._classify(kind, token, False)
        code, system = lo[0], lo[1]
        if hi is None or hi[1] != system or _shape(hi[0]) != _shape(code):
            return None
        if not 0 < _number(hi[0]) - _number(code) <= MAX_RANGE:
            return None
        label = f"{code}-{hi[0]}"
        hi_span = t.span(name)
        shape = _shape(code)
        # between() compares strings, so "3074F" sorts among five-digit codes: keep one shape.
        members = [c for c in self.index.between(system, code, hi[0]) if _shape(c) == shape]
        if not members:  # nothing known in between: report the two ends as unknown codes
            return [((code, system, False), lo_span), ((hi[0], system, False), hi_span)], label
        whole = (lo_span[0], hi_span[1])
        spans = {code: lo_span, hi[0]: hi_span}
        return [((c, system, True), spans.get(c, whole)) for c in members], label

    def _modifier_mention(self, text: str, kind: str, start: int, pos: int, how: str | None) -> int:
        """Record "modifier 59", "-59" or a standalone "XS"; returns where the scan goes on."""
        listed = ctx.MOD_LIST.match(text, start) if how == "modword" else None
        if listed is not None:  # "modifiers 25 and 59": the whole list
            for token in ctx.MOD_IN_LIST.findall(listed.group()):
                mod = ctx.modifier_ok(token, strict=False)
                if mod is not None:
                    self.mentioned.setdefault(mod)
            return max(pos, listed.end())
        if kind == "num2" and how != "dash":
            return pos  # a bare two-digit number is no modifier
        token = text[start:pos]
        # "Atlanta, GA" or "Atlanta GA 30303": the state, not the waiver modifier.
        if token in ctx.ZIP3:
            if ctx.COMMA_BEFORE.search(text, max(0, start - 8), start):
                return pos
            zip_code = ctx.ZIP_AFTER.match(text, pos)
            if zip_code is not None and ctx.is_zip(text, start, zip_code[1]):
                return pos
        self.mentioned.setdefault(token)
        return pos

    def _add(self, found: tuple[str, str, bool], span: tuple[int, int], mods, units: int | None,
             label: str | None) -> None:
        code, system, known = found[0], found[1], found[2]
        key = (system, code)
        entry = self.codes.get(key)
        if entry is None:
            entry = self.codes[key] = FoundCode(code, system, self.quoted, [], 1, known, [], label)
        elif label is None:
            entry.from_range = None  # also named on its own, not only through a range
        if not self.quoted:
            entry.spans.append(span)
        if mods:
            have = entry.modifiers
            for mod in mods:
                if mod not in have:
                    have.append(mod)
        if units is not None and key not in self._units_given:
            entry.units = units  # the first mention that gives units decides
            self._units_given.add(key)
