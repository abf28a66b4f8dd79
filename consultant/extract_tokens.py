"""What a code-shaped token reads as (CPT, HCPCS, ICD-10-CM or no code), remembered per code index,
and the patterns and tables the finder's scan loop (extract.py) reads on every call."""
from __future__ import annotations

import weakref

from consultant import extract_context as ctx
from consultant.codeindex import CPT, HCPCS, ICD10CM, CodeIndex, dot_icd

# The characters a TAIL match can start with: after any other character a code has no tail.
TAIL_FIRST = frozenset(" \txX×(,-–—/&+TtWwMmAaPp0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")

# What a token reads as, per code index: {token: (code, system, known, key) or None}, one dict for
# tokens after a diagnosis label and one for the others. A token's shape fixes how the scan reads it
# (five digits, four digits and F/T, a letter and more, with or without a dot), so the token alone
# is the key. Only one index is remembered (the worker has one at a time; a new release makes a new
# index) and each dict is emptied when it grows past MEMO_SIZE, so hostile text cannot bloat it.
MEMO_SIZE = 4096
MEMO: tuple[weakref.ref | None, tuple[dict, dict]] = (None, ({}, {}))


def memo_for(index: CodeIndex) -> tuple[dict, dict]:
    """Fresh memo dicts for a new index."""
    global MEMO
    memo: tuple[dict, dict] = ({}, {})
    MEMO = (weakref.ref(index), memo)
    return memo


def shape(code: str) -> str:
    """'5' for five digits, 'F'/'T' for Category II/III, else the HCPCS letter: a range keeps one."""
    if code[0].isdigit():
        return "5" if code[4].isdigit() else code[4]
    return code[0]


def number(code: str) -> int:
    return int(code[1:] if code[0].isalpha() else code if code[4].isdigit() else code[:4])



# What each MASTER group name means; None for the traps (phones, dates, times, ZIP+4, amounts).
KIND = {name: (None if kind in ctx.TRAPS else kind) for name, kind in ctx.KINDS.items()}
MISSING = object()
HOT: tuple = ()


# What a word in front of a candidate (after blanks) says: {word as written: may a LEFT branch
# match?}. Words before codes repeat ("bill", "and", "with"), so this saves lowercasing and
# looking each one up; emptied past MEMO_SIZE like the token memo.
WORDS: dict[str, bool] = {}


def hot() -> tuple:
    """What _Scan.run reads on every call, in one tuple; made on the first call, which compiles
    the patterns (extract_context leaves them to their first use)."""
    global HOT
    kinds = (None, *KIND.values())  # by group number (m.lastindex): cheaper than m.lastgroup
    HOT = (ctx.MASTER.scanner, kinds, ctx.LEFT_AT, ctx.LEFT_AFTER_BLANKS, ctx.LEFT_WORDS, ctx.LEFT_CONTEXT.match,
            ctx.LEFT_WINDOW, TAIL_FIRST, ctx.TAIL.match, WORDS, ctx.CPT_MODIFIERS, ctx.ID_REST.match,
            ctx.LIST_SEP.match)
    return HOT


def read(index: CodeIndex, kind: str, token: str, diag: bool, memo: dict):
    """classify()'s answer with the FoundCode key appended, remembered in memo."""
    found = classify(index, kind, token, diag)
    if found is not None:
        found = (*found, (found[1], found[0]))
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[token] = found
    return found


def classify(index: CodeIndex, kind: str, token: str, diag: bool) -> tuple[str, str, bool] | None:
    """(code, system, known) for a code-shaped token, or None when it is not taken as a code."""
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
