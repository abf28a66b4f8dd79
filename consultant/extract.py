"""Find the CPT, HCPCS Level II and ICD-10-CM codes (with modifiers, ranges and units) in a question."""
from __future__ import annotations

import re
from dataclasses import dataclass

from consultant import extract_context as ctx
from consultant import extract_tokens as tokens
from consultant.codeindex import ICD10CM, CodeIndex
from consultant.extract_tokens import MEMO_SIZE, MISSING, TAIL_FIRST, classify, memo_for, number, read, shape

# A wider "range" is more likely two unrelated codes joined by a dash than a family of codes.
MAX_RANGE = 200
# Bounds the work after one code even on adversarial input ("99213-25-25-25-...").
MAX_TAIL_STEPS = 16

_ODD_SPACES = ("\u00a0", "\u2007", "\u202f")


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
    ref, memo = tokens.MEMO  # one read, so two threads never mix one index's answers with another's
    if ref is None or ref() is not index:
        memo = memo_for(index)
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


class _Scan:
    """One pass over one text, gathering one FoundCode per code and the modifiers mentioned."""

    __slots__ = ("_units_given", "codes", "index", "memo", "mentioned", "quoted")

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
        (scanner, kinds, left_at, after_blanks, left_words, left_context, window, tail_first, tail,
         words, cpt_modifiers, id_rest, list_sep) = tokens.HOT or tokens.hot()
        plain_memo, diag_memo = self.memo
        codes, quoted = self.codes, self.quoted
        size = len(text)
        backwards = None  # the text reversed, made when LEFT_CONTEXT first has to run
        urls = None  # whether the text has anything of a URL or e-mail address, when first asked
        pos = 0
        diag_end = -1  # where the last diagnosis-labelled code ended, for "Dx: M54.16, G89.29"
        # A scanner goes on where its last match ended; where the scan skips further (a tail, an
        # identifier) a new one starts there, as search(text, pos) would (the skipped text mostly
        # holds a candidate, "-59", that the old scanner would match for nothing).
        while True:
            for m in iter(scanner(text, pos).search, None):
                start, end = m.span()
                pos = end
                kind = kinds[m.lastindex]
                if kind is None:
                    continue
                if kind == "icdd" or kind == "lett":
                    start -= 1  # the match begins at the digit after the code's letter
                elif kind == "num2" and text[start:pos] not in cpt_modifiers:
                    continue
                # What stands just before the candidate (label, "Dx", state, "$"...), read backwards.
                left = how = char = None
                if start:
                    char = text[start - 1]
                    if char == " " or char == "\t":
                        # Mostly an ordinary word stands in front ("bill 62303"): then no need.
                        lo = start - 24 if start > 24 else 0
                        if start > 1 and text[start - 2] not in " \t":  # one blank: the word ends there
                            space = text.rfind(" ", lo, start - 1)
                            word = text[space + 1 if space >= 0 else lo:start - 1]
                        else:
                            before = text[lo:start].rstrip(" \t")
                            word = before[before.rfind(" ") + 1:]
                        if not word:  # only blanks in the window
                            pattern = left_context
                        else:
                            may = words.get(word)
                            if may is None:
                                low = word.lower()  # lower() first: "İ" -> "i̇"
                                may = not low.isalnum() or low in left_words
                                if len(words) >= MEMO_SIZE:
                                    words.clear()
                                words[word] = may
                            # the branches that can match after the blanks
                            pattern = after_blanks.get(word[-1]) if may else None
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
                    if pos == end:
                        continue
                    break
                if how is not None:
                    if how == "currency" or how == "label" or how == "hash":
                        pos = id_rest(text, pos).end()  # all of "claim #62303-01"
                        if pos == end:
                            continue
                        break
                    # The state starts where the match ends in the reversed text.
                    if how == "state" and ctx.is_zip(text, size - left.end(), text[start:pos]):
                        continue
                if char is not None and char != " " and char != "\n" and char != "\t":
                    if urls is None:  # in_url_or_email looks for these in a part of the text
                        urls = "@" in text or "://" in text or "www." in text.lower()
                    if urls and ctx.in_url_or_email(text, start):
                        pos = id_rest(text, pos).end()
                        if pos == end:
                            continue
                        break
                diag = how == "dx" or (diag_end >= 0 and list_sep(text, diag_end).end() == start)
                token = text[start:pos]
                memo = diag_memo if diag else plain_memo
                found = memo.get(token, MISSING)
                if found is MISSING:
                    found = read(self.index, kind, token, diag, memo)
                if found is None:
                    continue
                if found[1] == ICD10CM:
                    units = None
                    diag_end = pos if diag else -1
                else:
                    diag_end = -1
                    units = (int(left["units"][::-1]) or None) if how == "units" else None
                    after = text[pos] if pos < size else ""
                    if after == " ":  # after one space, what TAIL would look at
                        after = text[pos + 1] if pos + 1 < size else ""
                    if after in tail_first:
                        t = tail(text, pos)
                        if t is not None:
                            pos = self._code_with_tail(text, found, start, pos, units, t)
                            if pos == end:
                                continue
                            break
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
                if units is not None and key not in self._units_given:
                    entry.units = units  # the first mention that gives units decides
                    self._units_given.add(key)
            else:
                return

    def _code_with_tail(self, text: str, found: tuple, start: int, pos: int, pre_units: int | None,
                        t: re.Match) -> int:
        """Add a CPT/HCPCS code (or a range) with its modifiers and units; returns where to go on.

        t is the first TAIL match after the code (the scan has made it already).
        """
        group = [(found, (start, pos))]
        label = None
        mods: list[str] = []
        units = None
        size = len(text)
        tail, kinds, modifier_ok = ctx.TAIL.match, ctx.TAIL_KINDS, ctx.modifier_ok
        for step in range(MAX_TAIL_STEPS):
            if step:
                char = text[pos] if pos < size else ""
                if char == " ":  # after one space, what the pattern would look at
                    char = text[pos + 1] if pos + 1 < size else ""
                if char not in TAIL_FIRST:
                    break  # cheaper than a TAIL match that cannot succeed
                t = tail(text, pos)
                if t is None:
                    break
            name = t.lastgroup
            what = kinds[name]
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
                listed = [modifier_ok(tok, False) for tok in ctx.MOD_IN_LIST.findall(t[name])]
                listed = [mod for mod in listed if mod]
                if not listed:
                    break
                mods.extend(listed)
            elif what == "joined":
                mod = modifier_ok(t[name], True)
                if mod is not None:
                    self.mentioned.setdefault(mod)
                    pos = t.end()
                break
            else:  # one modifier: after a dash, a slash (only in a list, "RT/LT") or a space
                if what == "slash" and not mods:
                    break
                token = text[t.end() - 2:t.end()] if what == "space" else t[name]
                mod = modifier_ok(token, what == "space")
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
        hi = classify(self.index, kind, token, False)
        code, system = lo[0], lo[1]
        if hi is None or hi[1] != system or shape(hi[0]) != shape(code):
            return None
        if not 0 < number(hi[0]) - number(code) <= MAX_RANGE:
            return None
        label = f"{code}-{hi[0]}"
        hi_span = t.span(name)
        form = shape(code)
        # between() compares strings, so "3074F" sorts among five-digit codes: keep one shape.
        members = [c for c in self.index.between(system, code, hi[0]) if shape(c) == form]
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
