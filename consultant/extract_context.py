"""The patterns and word lists extract.py uses to tell codes from look-alikes (ZIPs, phones, IDs...)."""
from __future__ import annotations

import re
from collections.abc import Callable

# Characters other than the letter itself and its other case that (?i) also matches, per ASCII
# letter (the Kelvin sign, dotted and dotless i, long s). fold() leaves these three letters to
# (?i): a plain class with them ([sSſ]) has three runs of characters, one past 255, and re compiles
# that into a 64K-character map, slowly (2,300 such classes took 200 ms at import).
_FOLD_EXTRA = {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}


def cases(char: str) -> str:
    """Every character (?i) matches for an ASCII letter, the letter itself included."""
    return f"{char.lower()}{char.upper()}{_FOLD_EXTRA.get(char.lower(), '')}"


def fold(char: str) -> str:
    """A pattern for one character that matches what (?i) would match for it.

    A plain class ([aA]) where it can, so that an alternative opening with it is skipped by the
    regex engine at a glance; (?i:s) for i, k and s, which compiles far faster than their class.
    """
    if char.isascii() and char.isalpha():
        if char.lower() in _FOLD_EXTRA:
            return f"(?i:{char.lower()})"
        return f"[{char.lower()}{char.upper()}]"
    return "[ ]" if char == " " else re.escape(char)


def folds(word: str) -> str:
    """fold() for each character of a word: (?i:word) without (?i), keeping the pattern's shape."""
    return "".join(fold(char) for char in word)


def any_of(words: list[str]) -> str:
    """A pattern for "one of these words, in any case" as a tree of fold()s.

    It matches the same strings as (?i:w1|w2|...), but the regex engine skips each alternative
    after one cheap look at a character, where the flat (?i) list enters every alternative; in
    LEFT_CONTEXT that made the difference. The order of alternatives differs from the flat list,
    so it is used only where what matters is whether the branch matches, not where it ends.
    """
    tree: dict = {}
    for word in words:
        node = tree
        for char in word.lower():
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict) -> str:
        ends = "" in node
        alts = [fold(char) + emit(node[char]) for char in sorted(c for c in node if c)]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 and not ends else f"(?:{'|'.join(alts)})"
        return f"{body}?" if ends else body

    return emit(tree)



CPT_MODIFIERS = frozenset(
    "22 23 24 25 26 27 32 33 47 50 51 52 53 54 55 56 57 58 59 62 63 66 76 77 78 79 80 81 82"
    " 90 91 92 93 95 96 97 99 1P 2P 3P 8P".split()
)
HCPCS_MODIFIERS = frozenset(
    "XE XS XP XU RT LT LC LD RC LM RI E1 E2 E3 E4 FA F1 F2 F3 F4 F5 F6 F7 F8 F9"
    " TA T1 T2 T3 T4 T5 T6 T7 T8 T9 GA GY GZ GX GT GQ GC GE GP GO GN GV GW KX QW"
    " JW JZ JG TB TC AI AS AA AD QS SA SB PO PN PD P1 P2 P3 P4 P5 P6 Q5 Q6 Q0 CR CS"
    " FX FY AQ AR QK QX QZ QY".split()
)
MODIFIERS = CPT_MODIFIERS | HCPCS_MODIFIERS

# Standing alone (attached to no code) only these count, and only in upper case: the others are
# also everyday abbreviations (AI, AS, PO "by mouth", TB, CS, TA, T1/T2 MRI, T3/T4 thyroid, F1 keys).
STANDALONE_MODIFIERS = (
    "XE XS XP XU RT LT LC LD RC LM FA GA GY GZ GX GQ GC GP GN KX QW JW JZ JG TC QK QX QZ QY".split()
)

# Modifiers that are also words or common abbreviations ("99214 AS WELL", "-as needed"): they
# count only in upper case after a dash or the word "modifier", never after a bare space.
WORDLIKE_MODIFIERS = frozenset("AS GO AI PO TA AR GE CS CR TB SA SB PD AA AD".split())

HCPCS_LETTERS = frozenset("ABCEGHJKLMPQRSTUV")

# Undotted tokens shaped like ICD-10-CM categories that are nearly always something else (lab
# tests, vitamins, masks, vehicles, highways); only a diagnosis label makes them codes.
LOOKALIKES = frozenset("A1C B12 N95 H2O F150 F16 F35 B52 G20 M16 I95 P90 C19".split())

# Words after a number that make it a measurement, never a modifier ("99214 30 minutes").
# ("s?" marks a word that may end in "s"; only whether one of them follows counts, so any_of.)
_UNIT_WORDS = [w.replace("s?", "") for w in (
    "min mins minute minutes hr hrs hour hours sec secs seconds units? u mg mcg ug g gm grams? kg lbs?"
    " pounds? ml cc mm cm ft feet inch inches percent days? wks? weeks? mos? months? yrs? years? yo y/o"
    " times patients? pts sessions? mmhg bpm degrees?"
).split()] + [w.replace("?", "") for w in (
    "units? grams? lbs? pounds? days? wks? weeks? mos? months? yrs? years? patients? sessions? degrees?"
).split()]
_UNIT_AFTER = rf"[ \t]*+(?:%|°|{any_of(_UNIT_WORDS)}\b)"

# What may not touch a code on its left (words, currency, e-mail, decimals) and on its right
# (words, e-mail, "99213.00", "99,213,000"); a glued "x2" on the right is units ("J1100x2").
_NOT_BEFORE = r"[\w$€£¥@.]"
RIGHT = r"(?:(?![\w@]|\.\w|,[0-9]{3}(?![0-9]))|(?=[xX×][0-9]{1,3}(?!\w)))"
LEFT = rf"(?<!{_NOT_BEFORE})"

# The end of a would-be modifier: not glued to more text, not a time, date or measurement.
_MOD_END = rf"(?![\w%]|\.\w|:[0-9]|/[0-9]{{1,2}}/|{_UNIT_AFTER})"
MODTOK = rf"(?:[0-9]{{2}}|[1238][Pp]|[A-Za-z][A-Za-z0-9]){_MOD_END}"
_MODLIST = rf"-?{MODTOK}(?:\s*(?:,|/|&|\+|(?i:and|or)\b)\s*-?{MODTOK})*"

# Words after a number that make it an amount or a distance, never a code ("62303 dollars").
# Where one word starts another, the shorter one is never followed by \b: any_of keeps the end.
_AMOUNT_WORDS = any_of("dollar dollars usd bucks cents miles km feet steps kcal calories".split())
_UPPER_STARTS = "".join(sorted({m[0] for m in STANDALONE_MODIFIERS}))
# An extension after a phone number belongs to it: "555-123-4567 x 99213", "... ext. 12".
_EXTENSION = r"(?:[ \t]*,?[ \t]*(?:[xX]|(?i:ext|extension)\.?)[ \t]*[0-9]{1,6}(?![0-9]))?"
_PHONE_REST = rf"(?:\([0-9]{{3}}\)[ ]?|[0-9]{{3}}[ .-])[0-9]{{3}}[ .-][0-9]{{4}}(?![0-9]){_EXTENSION}"

# The forward pass. Every match starts at a digit or at the first letter of an upper-case
# modifier, and the pattern opens with that character class: the regex engine then skips all
# other text in C, which is what makes the pass fast. Left context (labels before a number,
# "Dx", a state, "$") is read afterwards by LEFT_CONTEXT, only for the few candidates.
# The empty groups at the ends name what matched (m.lastgroup); at the front they would slow it.
# Digit runs are possessive ("*+") where what follows can never be a digit: giving some back
# cannot help. The traps are tried only where the cheap look ahead of them says one may match.
_MASTER = (
    rf"""
    [0-9{_UPPER_STARTS}]
    (?:
        # standalone modifier (XS): opens with its 2nd letter, so "The" fails at a glance
        [A-Z](?<=[A-Z][A-Z])(?<!\w[A-Z][A-Z])(?<={'|'.join(STANDALONE_MODIFIERS)})(?!\w|-\w)(?P<upmod>)
      | (?<=[A-Za-z][0-9])(?<!{_NOT_BEFORE}[A-Za-z][0-9])   # letter + digit: J1100, M54.16, m5416
        (?:
            [0-9]{{3}}(?=[xX×][0-9]{{1,3}}(?!\w))(?P<lett_1>)      # "J1100x2": units glued on
          | [0-9A-Za-z]\.[0-9A-Za-z]{{1,4}}{RIGHT}(?P<icdd>)
          | [0-9A-Za-z]{{1,5}}{RIGHT}(?P<lett>)
        )
      | (?<=[0-9])(?<!{_NOT_BEFORE}[0-9])                   # the first digit of a number
        (?:
            (?=[0-9]*+(?:[.\-/:,)]|[ ]?[0-9({''.join(cases(c) for c in 'bcdfkmsu')}]))  # what every trap needs
            (?:
                (?<=\([0-9])[0-9]{{2}}\)[ ]?[0-9]{{3}}[ .-][0-9]{{4}}(?![0-9]){_EXTENSION}(?P<phone>)
              | (?<=1)[ .-]?{_PHONE_REST}(?P<phone_1>)
              | [0-9]{{2}}[ .-][0-9]{{3}}[ .-][0-9]{{4}}(?![0-9]){_EXTENSION}(?P<phone_2>)
              | [0-9]{{3}}[-/.][0-9]{{1,2}}[-/.][0-9]{{1,2}}(?!\w)(?P<date>)
              | [0-9]?[-/.][0-9]{{1,2}}[-/.][0-9]{{2,4}}(?!\w)(?P<date_1>)
              | [0-9]?:[0-9]{{2}}(?::[0-9]{{2}})?(?P<time>)
              | [0-9]{{4}}-[0-9]{{4}}(?!\w)(?P<zip4>)
              | [0-9]{{0,2}}(?:,[0-9]{{3}})+(?:\.[0-9]+)?(?!\w)(?P<amount>)
              | [0-9]*+\.[0-9]++(?!\w)(?P<amount_1>)
              | [0-9]*+(?:\.[0-9]++)?[ ]?{_AMOUNT_WORDS}\b(?P<amount_2>)
            )
          | [0-9]{{4}}{RIGHT}(?P<c5>)
          | [0-9]{{3}}[FfTt]{RIGHT}(?P<c4>)
          | [0-9]{_MOD_END}(?P<num2>)
        )
    )
    """
)
# Group name -> what matched ("phone_1" -> "phone"), in the order of the groups.
KINDS = {name: name.split("_")[0] for name in re.findall(r"\(\?P<(\w+)>", _MASTER)}
TRAPS = frozenset("phone date time zip4 amount".split())

# Read on the reversed text just before a candidate, so "claim #" in front of 62303 is matched
# from the number outwards in one anchored step, however the label is spelled.
LEFT_WINDOW = 48
_ID_LABELS = (
    "claim member mbr subscriber policy acct account invoice inv ref reference group grp id npi tin"
    " ein ssn taxid mrn icn dcn ticket tracking confirmation conf box suite ste room rm apt apartment"
    " zip zipcode postal phone tel fax cell pager batch ext extension"
).split() + ["tax id", "po box", "p.o. box", "p. o. box", "p.o.box", "zip code", "postal code"]


_STATES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ"
    " NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR VI GU"
).split()

# Runs of blanks are matched possessively ("*+"): what follows each run cannot start with a blank,
# so giving some back never helps, and trying every split made a long run of spaces cost
# milliseconds per candidate (a million-character body of indented numbers took minutes).
# Of a match only the branch's name counts, except for "state" (where it ends) and "units" (the
# number): the other branches may spell their words as trees (any_of), and the blank runs that
# nothing after them can start with are possessive.
_ID_WORDS = any_of([".on", "on", ".son", "son", "rebmun", "mun", "rbn", "sdi", "di", "edoc"])
_DX_WORDS = any_of(["dci", "01dci", "01 dci", "01-dci"] + [f"mc{sep}01{sep2}dci" for sep in ("", " ", "-")
                                                          for sep2 in ("", " ", "-")]
                   + ["xdd", "xd", "gaid", "sisongaid", "sesongaid"])
_DX_START = "0dgmsx" + "efs"  # the dx words, and "is/was/of/are" and "codes" before them
_LABEL_START = "".join(sorted({w[-1] for w in _ID_LABELS} | set("osrmde")))  # and "no", "#"...


def _folded(letters: str) -> str:
    """Every character (?i) matches for these letters, the others as they are."""
    return "".join(cases(c) if c.isascii() and c.isalpha() else c for c in letters)


# The branches, in order, each with the characters its match can start with and, for a match
# that starts with blanks, the characters that can stand right after them. The scan runs only
# the branches that can match where it is (LEFT_AT, LEFT_AFTER_BLANKS): the first that matches is
# the same as in LEFT_CONTEXT, which tries them all.
_LEFT_BRANCHES = [
    (rf"(?:[ ]?[$€£¥]|[ ]?{any_of(['dsu', 'rue', 'pbg'])}(?!\w))(?P<currency>)",
     " $€£¥" + _folded("drp"), "$€£¥" + _folded("drp")),
    (rf"""[ \t]*+[:.\#]?[ \t]*+(?:(?:\#|{_ID_WORDS}(?=[ \t]))[ \t]*)*
      {any_of([w[::-1] for w in _ID_LABELS])}(?!\w)(?P<label>)""",
     " \t:.#" + _folded(_LABEL_START), ":.#" + _folded(_LABEL_START)),
    (rf"[ \t]*\#[ \t]*(?:{any_of(['tpc', 'scpch', 'sedoc', 'edoc', 'dci'])}(?!\w)(?P<codeword>)|(?P<hash>))",
     " \t#", "#"),
    (rf"""[ \t]*+(?:[:\#=-][ \t]*+)?(?:{any_of(["si", "saw", "fo", "era"])}[ \t]++)?(?:[:\#=-][ \t]*+)?
      (?:{fold("s")}?{any_of(["edoc "])})?{_DX_WORDS}(?!\w)(?P<dx>)""",
     " \t:#=-" + _folded(_DX_START), ":#=-" + _folded(_DX_START)),
    (rf"[ \t]+,?\.?(?:{'|'.join(s[::-1] for s in _STATES)})(?!\w)(?P<state>)",
     " \t", ",." + "".join({s[-1] for s in _STATES})),
    (r"[ \t]+(?i:fo[ \t]+)?(?:(?i:s?tinu|u)[ \t]*|[xX×][ \t]*)(?P<units>[0-9]{1,3})(?![\w.,])",
     " \t", _folded("fstu") + "xX×"),
    (rf"-?[ \t]*+[:\#]?[ \t]*+{fold('s')}?{any_of(['reifidom', 'dom'])}(?!\w)(?P<modword>)",
     "- \t:#" + _folded("sdr"), ":#" + _folded("sdr")),
    (r"-(?![\w\-–.])(?P<dash>)", "-", ""),
]


def _left_matchers(which: int) -> dict[str, Callable[..., re.Match | None]]:
    """For each character, the match function of the branches that can match where it stands.

    Each pattern is compiled when it is first used: compiling all of them took a good part of the
    worker's start-up, and a process may never meet most of them. The first call puts the compiled
    pattern's match in the dict, for every character that shares it, so later calls go straight
    to it.
    """
    by_chars: dict[str, list[str]] = {}
    for branch in _LEFT_BRANCHES:
        for char in set(branch[which]):
            by_chars.setdefault(char, []).append(branch[0])
    by_branches: dict[tuple[str, ...], list[str]] = {}
    for char, branches in by_chars.items():
        by_branches.setdefault(tuple(branches), []).append(char)
    matchers: dict[str, Callable[..., re.Match | None]] = {}
    for branches, chars in by_branches.items():
        def compile_and_match(*args, branches=branches, chars=chars) -> re.Match | None:
            match = re.compile("|".join(branches), re.VERBOSE).match
            matchers.update(dict.fromkeys(chars, match))
            return match(*args)
        matchers.update(dict.fromkeys(chars, compile_and_match))
    return matchers


# The character before a candidate -> the match function of the branches that can start with it
# (none: no function).
LEFT_AT = _left_matchers(1)
# After blanks before a candidate, the first other character -> the branches that can match.
LEFT_AFTER_BLANKS = _left_matchers(2)


# Everything that may follow a code, one step per match: units, the other end of a range,
# modifiers (after a dash, a slash, a space or a "modifier" word), or a modifier merely joined by
# "and" ("62303 and 59": mentioned, too loose to attach). Each branch opens with a plain
# character so the engine rejects it at a glance; units come before modifiers so "x2" is never
# read as a would-be modifier, and a range before a dash so "62302-62305" is no modifier.
# Group names: the part before "_" says what matched.
_ARTICLE = rf"(?:(?:{fold('a')}|{folds('an')}|{folds('the')})[ \t]+)?"
_UNITS = f"{folds('unit')}{fold('s')}?"
_CODE_AHEAD = rf"{LEFT}(?:[0-9]{{5}}|[0-9]{{4}}[FfTt]|[A-Za-z][0-9]{{4}}){RIGHT}"
# The commonest misses ("62303 with 72128", "62303 and 72128", "62303, 72128") are rejected up
# front: no branch can match there (a modifier after "with"/"and" has two digits, not three or
# more; units after a comma have at most three digits and a unit word).
_TAIL = (
    rf"""
    (?![ \t]*+(?:(?:[Ww]ith|[Aa]nd)[ \t]+[0-9]{{3}}|,[ \t]*[0-9]{{4}}))
    [ \t]*+
    (?:
        [xX×][ \t]*(?P<units>[0-9]{{1,3}})(?!\w|\.[0-9])
      | \([ \t]*(?:[xX×][ \t]*(?P<units_1>[0-9]{{1,3}})|(?P<units_2>[0-9]{{1,3}})[ \t]*{_UNITS})[ \t]*\)
      | ,[ \t]*(?P<units_3>[0-9]{{1,3}})[ \t]*{_UNITS}\b
      | [0-9]{{1,3}}[ \t]*{_UNITS}\b(?P<units_4>)
      | [-–—][ \t]*(?P<range>{_CODE_AHEAD})
      | [Tt](?<=\s[Tt])(?:{folds('hrough')}|{folds('hru')}|{fold('o')})[ \t]+(?P<range_to>{_CODE_AHEAD})
      | [-–][ \t]*(?P<mod>{MODTOK})
      | /[ \t]*(?P<slash>{MODTOK})
      | [Ww](?:{folds('ith')}\b|/)[ \t]*{_ARTICLE}
        (?:(?:{folds('modifier')}{fold('s')}?|{folds('mod')}{fold('s')}?)\b[ \t]*[:\#]?[ \t]*(?P<mods>{_MODLIST})
          | -?(?P<mod_1>{MODTOK})[ \t]+(?:{folds('modifier')}|{folds('mod')})\b)
      | [Mm]{folds('od')}(?:{folds('ifier')})?{fold('s')}?\b[ \t]*[:\#]?[ \t]*(?P<mods_1>{_MODLIST})
      | (?:[Aa]{folds('nd')}|[Pp]{folds('lus')}|[Ww]{folds('ith')}|&|\+)[ \t]+-?(?P<joined>{MODTOK})
      | [0-9A-Z](?<=[ \t][0-9A-Z])[0-9A-Z]{_MOD_END}(?P<space>)
    )
    """
)
TAIL_KINDS = {name: name.split("_")[0] for name in re.findall(r"\(\?P<(\w+)>", _TAIL)}

# Words that, right before a number, may start one of the LEFT_CONTEXT patterns: when the word
# in front of a candidate is none of these (nor punctuation), the pattern need not run at all.
LEFT_WORDS = frozenset(
    [w.split()[-1].replace(".", "") for w in _ID_LABELS]
    + "no nos number num nbr id ids code codes usd eur gbp dx ddx diag diagnosis diagnoses icd icd10"
      " icd-10 icd-10-cm cm 10 is was of are unit units u x × modifier modifiers mod mods".split()
    + [s.lower() for s in _STATES]
)

MOD_IN_LIST = re.compile(r"(?<!\w)-?([0-9]{2}|[1238][Pp]|[A-Za-z][A-Za-z0-9])(?!\w)")
# The rest of an identifier after its label ("claim #62303-01"), skipped with it.
ID_REST = re.compile(r"[\w-]*")

# What may separate codes of one diagnosis list ("Dx: M54.16, G89.29 and E11.9").
LIST_SEP = re.compile(r"(?:\s*(?:[,;/&]|(?i:and|or)\b))*\s*")

# "change 99213 to 99214" names two codes, not the range between them.
CHANGE_BEFORE = re.compile(
    r"(?i:\b(?:chang|switch|convert|correct|updat|upgrad|downgrad|upcod|downcod|recod|bump|mov)"
    r"(?:e|es|ed|ing)?[ \t]+(?:it[ \t]+|this[ \t]+|the[ \t]+code[ \t]+)?(?:from[ \t]+)?)$"
)

# "Springfield, IL 62703", "Austin TX 78701": a city (capitalised word) or a comma before the state.
CITY_BEFORE = re.compile(r"(?:,|\b[A-Z][A-Za-z.'-]+)[ \t]*$")
COMMA_BEFORE = re.compile(r",[ \t]*$")
# The ZIP after a state ("Atlanta GA 30303", "Macon GA 31201-1234"): the state is then no modifier.
ZIP_AFTER = re.compile(r"[ \t]+([0-9]{5})(?:-[0-9]{4})?(?![0-9])")

# State abbreviations that are also everyday upper-case words ("99213 OR 97110", "MD", "PA"):
# before a number they mean a ZIP only with a city or a comma in front.
AMBIGUOUS_STATES = frozenset(
    "AL CO CT DE GA HI ID IN LA MA MD ME MS MO NE OH OK OR PA SC VA WA AR RI".split()
)

# The first three ZIP digits each state uses; a state next to a number outside them is no address.
_ZIP3 = {
    "AL": "350-369", "AK": "995-999", "AZ": "850-865", "AR": "716-729 755", "CA": "900-966",
    "CO": "800-816", "CT": "060-069", "DE": "197-199", "DC": "200-205 569", "FL": "320-349",
    "GA": "300-319 398-399", "HI": "967-968", "ID": "832-838", "IL": "600-629", "IN": "460-479",
    "IA": "500-528", "KS": "660-679", "KY": "400-427", "LA": "700-714", "ME": "039-049",
    "MD": "206-219", "MA": "010-027 055", "MI": "480-499", "MN": "550-567", "MS": "386-397",
    "MO": "630-658", "MT": "590-599", "NE": "680-693", "NV": "889-898", "NH": "030-038",
    "NJ": "070-089", "NM": "870-884", "NY": "005 063 100-149", "NC": "270-289", "ND": "580-588",
    "OH": "430-459", "OK": "730-749", "OR": "970-979", "PA": "150-196", "RI": "028-029",
    "SC": "290-299", "SD": "570-577", "TN": "370-385", "TX": "733 750-799 885", "UT": "840-847",
    "VT": "050-059", "VA": "201 220-246", "WA": "980-994", "WV": "247-268", "WI": "530-549",
    "WY": "820-831", "PR": "006-009", "VI": "008", "GU": "969",
}


def _prefixes(spec: str) -> frozenset[str]:
    out: set[str] = set()
    for part in spec.split():
        lo, _, hi = part.partition("-")
        out.update(f"{n:03d}" for n in range(int(lo), int(hi or lo) + 1))
    return frozenset(out)


ZIP3 = {state: _prefixes(spec) for state, spec in _ZIP3.items()}


def is_zip(text: str, state_start: int, number: str) -> bool:
    """True when the state at state_start and the number after it read as an address."""
    state = text[state_start:state_start + 2]
    if number[:3] not in ZIP3.get(state, ()):
        return False
    if state not in AMBIGUOUS_STATES:
        return True
    return CITY_BEFORE.search(text, max(0, state_start - 40), state_start) is not None


def in_url_or_email(text: str, start: int) -> bool:
    """True when the token at start sits inside a URL or an e-mail address (same unbroken chunk)."""
    low = max(0, start - 256)
    space = max(text.rfind(" ", low, start), text.rfind("\n", low, start), text.rfind("\t", low, start))
    chunk = text[space + 1 if space >= 0 else low:start]
    return "://" in chunk or "@" in chunk or chunk[:4].lower() == "www."


def modifier_ok(token: str, strict: bool) -> str | None:
    """The canonical modifier for a token, or None.

    strict (after a bare space, or standing alone) wants upper case and no word-like modifier;
    otherwise (after a dash or the word "modifier") lower case is fine except for word-like ones.
    """
    up = token.upper()
    if up not in MODIFIERS:
        return None
    if strict:
        return up if token == up and up not in WORDLIKE_MODIFIERS else None
    return up if token == up or up not in WORDLIKE_MODIFIERS else None


DIGITS = re.compile(r"[0-9]+")

# The big patterns are compiled when first used, not at import: a process that reads no text
# (an idle worker, the CLI) does not pay for them. Each is then an attribute like any other.
_LAZY = {"MASTER": (_MASTER, re.VERBOSE), "TAIL": (_TAIL, re.VERBOSE), "MOD_LIST": (_MODLIST, 0),
         "LEFT_CONTEXT": ("|".join(branch[0] for branch in _LEFT_BRANCHES), re.VERBOSE)}


def __getattr__(name: str) -> re.Pattern:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    pattern = globals()[name] = re.compile(*_LAZY[name])
    return pattern
