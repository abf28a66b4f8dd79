"""Split a message text into the sender's new words, the quoted history and the signature."""
from __future__ import annotations

import re

# Marker lines are short; longer lines skip the regexes.
_MAX_MARKER = 300
_SEPARATOR = re.compile(
    r"-{2,} ?(?:original message|forwarded message|ursprüngliche nachricht|"
    r"weitergeleitete nachricht|message d'origine|message transféré|mensaje original|"
    r"mensaje reenviado) ?-{2,}", re.I)
_FORWARD_INTRO = re.compile(
    r"(?:begin forwarded message|anfang der weitergeleiteten nachricht|"
    r"début du message réexpédié) ?:", re.I)
_RULE = re.compile(r"_{10,}|-{10,}|\* \* \*")
_HEADER_FROM = re.compile(r"(?:from|von|de) ?:", re.I)
_HEADER_DATE = re.compile(r"(?:sent|date|gesendet|datum|envoyé|enviado|fecha) ?:", re.I)
_HEADER_SUBJECT = re.compile(r"(?:subject|betreff|objet|asunto) ?:", re.I)
_ATTRIBUTION_END = re.compile(
    r"(?:\bwrote|\bschrieb\b.{0,250}|\ba\s+écrit|\bescribió)\s*:$", re.I)
_ATTRIBUTION_START = re.compile(r"(?:on|am|le|el)\s", re.I)
_OPENERS = frozenset({"on ", "am ", "le ", "el "})
_MOBILE = re.compile(
    r"(?:sent from (?:my|mail for|yahoo mail|outlook|samsung)\b.{0,60}|"
    r"get outlook for (?:ios|android)(?:\s*<[^>]*>)?|von meinem .{1,40} gesendet|"
    r"envoyé de mon .{1,40}|enviado desde mi .{1,40})", re.I)
_DIGIT = re.compile(r"\d")
_BLANK_RUN = re.compile(r"\n{3,}")
# Beyond this many lines, a bare "--" is more likely a separator in the question than a signature.
_MAX_BARE_SIGNATURE = 10

_NEW, _QUOTED, _SIGNATURE, _DELIMITER = range(4)


def _quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _next_nonblank(lines: list[str], start: int, stop: int) -> int:
    for i in range(start, stop):
        if lines[i].strip():
            return i
    return stop


def _attribution(lines: list[str], i: int, first: str) -> tuple[int, bool] | None:
    """Last line of an attribution starting at line i (stripped: first), and whether it is sure."""
    end = i
    whole = first
    if not (first[-1] == ":" and _ATTRIBUTION_END.search(first)):
        if first[:3].lower() not in _OPENERS or i + 1 >= len(lines):
            return None
        second = lines[i + 1].strip()  # mailers wrap a long attribution after the address
        if not second.endswith(":") or _quoted(second) or not _ATTRIBUTION_END.search(second):
            return None
        end, whole = i + 1, f"{first} {second}"
    if len(whole) > _MAX_MARKER:
        return None
    opener = _ATTRIBUTION_START.match(whole) is not None
    strong = opener and _DIGIT.search(whole) is not None
    if not (opener or "@" in whole):
        return None
    return end, strong


def _may_attribute(stripped: str) -> bool:
    return stripped[-1] == ":" or stripped[:3].lower() in _OPENERS


def _header_block(lines: list[str], i: int) -> bool:
    """An Outlook-style "From:/Sent:/To:/Subject:" block starts at line i."""
    dated = subject = False
    for line in lines[i + 1:i + 9]:
        stripped = line.strip()
        dated = dated or _HEADER_DATE.match(stripped) is not None
        subject = subject or _HEADER_SUBJECT.match(stripped) is not None
    return dated and subject


def _history_start(lines: list[str]) -> int:
    """Index of the first line of unprefixed quoted history (separator, header block...)."""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped[0] == ">" or len(stripped) > _MAX_MARKER:
            continue
        # Cheap first-character tests keep the regexes off ordinary lines.
        if stripped[0] == "-" and _SEPARATOR.fullmatch(stripped):
            return i
        if stripped[-1] == ":" and _FORWARD_INTRO.fullmatch(stripped):
            return i
        if stripped[0] in "FfVvDd" and _HEADER_FROM.match(stripped) and _header_block(lines, i):
            before = i - 1
            while before >= 0 and not lines[before].strip():
                before -= 1
            ruled = before >= 0 and _RULE.fullmatch(lines[before].strip())
            return before if ruled else i
        found = _attribution(lines, i, stripped) if _may_attribute(stripped) else None
        if found and found[1]:
            after = _next_nonblank(lines, found[0] + 1, len(lines))
            # Followed by ">" lines, it introduces a quote block that inline replies may follow.
            if after == len(lines) or not _quoted(lines[after]):
                return i
    return len(lines)


def _mark_attributions(lines: list[str], kinds: list[int], cut: int) -> None:
    for i in range(cut):
        if kinds[i] != _NEW:
            continue
        stripped = lines[i].strip()
        if not stripped or not _may_attribute(stripped):
            continue
        found = _attribution(lines, i, stripped)
        if found and found[0] < cut:
            after = _next_nonblank(lines, found[0] + 1, cut)
            if after < cut and kinds[after] == _QUOTED:
                for j in range(i, found[0] + 1):
                    kinds[j] = _QUOTED


def _short_signature(lines: list[str], start: int, end: int) -> bool:
    count = 0
    for j in range(start, end):
        if lines[j].strip():
            count += 1
            if count > _MAX_BARE_SIGNATURE:
                return False
    return True


def _mark_signature(lines: list[str], kinds: list[int], cut: int) -> None:
    # A signature runs to the next quote block; find those ends in one pass, not per line.
    next_quote = [cut] * (cut + 1)
    for j in range(cut - 1, -1, -1):
        next_quote[j] = j if kinds[j] == _QUOTED else next_quote[j + 1]
    i = 0
    while i < cut:
        line = lines[i]
        if kinds[i] != _NEW or not line or len(line) > 80:
            i += 1
            continue
        end = next_quote[i]
        if line.rstrip() == "--":
            if line == "-- " or _short_signature(lines, i + 1, end):
                kinds[i] = _DELIMITER
                kinds[i + 1:end] = [_SIGNATURE] * (end - i - 1)
                i = end
                continue
        elif _MOBILE.fullmatch(line.strip()):
            kinds[i:end] = [_SIGNATURE] * (end - i)
            i = end
            continue
        i += 1


def _tidy(lines: list[str]) -> str:
    start, stop = 0, len(lines)
    while start < stop and not lines[start].strip():
        start += 1
    while stop > start and not lines[stop - 1].strip():
        stop -= 1
    text = "\n".join(lines[start:stop]).rstrip()
    return _BLANK_RUN.sub("\n\n", text) if "\n\n\n" in text else text


def split_quoted(text: str) -> tuple[str, str, str]:
    """Return (new_text, quoted_text, signature) for a plain-text message body."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    cut = _history_start(lines)
    kinds = [_QUOTED if _quoted(line) else _NEW for line in lines[:cut]]
    _mark_attributions(lines, kinds, cut)
    _mark_signature(lines, kinds, cut)

    new: list[str] = []
    quoted: list[str] = []
    signature: list[str] = []
    gap = False  # separate quote blocks that new text interleaves
    for line, kind in zip(lines, kinds):
        if kind == _QUOTED:
            if gap and quoted:
                quoted.append("")
            quoted.append(line)
            gap = False
        elif kind == _NEW:
            new.append(line)
            gap = gap or bool(line.strip())
        elif kind == _SIGNATURE:
            signature.append(line)
    if cut < len(lines):
        if gap and quoted:
            quoted.append("")
        quoted.extend(lines[cut:])
    return _tidy(new), _tidy(quoted), _tidy(signature)
