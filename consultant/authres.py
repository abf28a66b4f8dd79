"""Read Authentication-Results header fields (RFC 8601): who checked, and what each method found.

A field reads `authserv-id [version] ; method=result [reason=...] ptype.property=value ... ; ...`,
or `authserv-id; none` when the server checked nothing. Comments in parentheses may appear
between any two parts (DMARC verifiers put the domain's policy there: `dmarc=fail (p=reject)`),
values may be quoted, and the field may be folded over several lines.

The text comes from the message, so from anyone: `parse` reads at most MAX_CHARS, keeps at most
MAX_RESULTS results and MAX_PROPS properties each, shortens long values, and never raises. What
it could not read it skips and notes in `problem`; deciding what an unreadable field means is
the caller's business (the screen rule does not trust it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_CHARS = 8192
MAX_RESULTS = 64
MAX_PROPS = 32
MAX_VALUE = 255
MAX_COMMENTS = 4
_SPECIALS = '()";='
_SPACE = " \t\r\n"
_JOINERS = "./"  # "header . d" and "dkim / 1" are one name written with spaces


@dataclass(frozen=True)
class MethodResult:
    """One `method=result` with what came after it: `props` maps "ptype.property" (lower-case) to
    the value as written; `comments` are the texts of its comments, outer parentheses removed."""

    method: str
    result: str
    reason: str = ""
    props: dict[str, str] = field(default_factory=dict)
    comments: tuple[str, ...] = ()

    def prop(self, name: str) -> str:
        return self.props.get(name.lower(), "")


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str
    version: int | None = None
    results: tuple[MethodResult, ...] = ()
    none: bool = False  # the server said it checked nothing
    problem: str = ""  # what could not be read ("" when everything was read)

    def of(self, method: str) -> list[MethodResult]:
        return [r for r in self.results if r.method == method]


@dataclass
class _Token:
    kind: str  # "atom" | "quoted" | "comment" | ";" | "="
    text: str = ""


def _delimited(text: str, i: int, close: str, nests: bool) -> tuple[str, int, bool]:
    """The body of a comment or quoted string that opens at text[i]; (body, next index, closed)."""
    depth, out, i = 1, [], i + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if nests and ch == "(":
            depth += 1
        elif ch == close:
            depth -= 1
            if depth == 0:
                return "".join(out), i + 1, True
        out.append(ch)
        i += 1
    return "".join(out), i, False


def _tokens(text: str) -> tuple[list[_Token], str]:
    tokens: list[_Token] = []
    problem, i = "", 0
    while i < len(text):
        ch = text[i]
        if ch in _SPACE:
            i += 1
        elif ch in ";=":
            tokens.append(_Token(ch))
            i += 1
        elif ch in '("':
            body, i, closed = _delimited(text, i, ")" if ch == "(" else '"', nests=ch == "(")
            tokens.append(_Token("comment" if ch == "(" else "quoted", body[:MAX_VALUE]))
            if not closed:
                problem = "an unclosed comment or quoted string"
        elif ch == ")":  # a stray closing parenthesis: nothing to read here
            i += 1
            problem = "a stray ')'"
        else:
            start = i
            while i < len(text) and text[i] not in _SPACE and text[i] not in _SPECIALS:
                i += 1
            tokens.append(_Token("atom", text[start:i][:MAX_VALUE]))
    return tokens, problem


def _segments(tokens: list[_Token]) -> list[list[_Token]]:
    parts: list[list[_Token]] = [[]]
    for token in tokens:
        if token.kind == ";":
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _name(atoms: list[str]) -> str:
    """The name just before an "=": the last word, joined to the words before it across "." or "/"."""
    if not atoms:
        return ""
    name = atoms[-1]
    k = len(atoms) - 2
    while k >= 0 and (name[:1] in _JOINERS or atoms[k][-1:] in _JOINERS):
        name = atoms[k] + name
        k -= 1
    return name.lower()


def _resinfo(part: list[_Token]) -> MethodResult | None:
    """`method=result` and its reason and properties; None when there is no method=result."""
    words: list[str] = []
    comments: list[str] = []
    found: dict[str, str] = {}
    order: list[str] = []
    i = 0
    while i < len(part):
        token = part[i]
        i += 1
        if token.kind == "comment":
            if len(comments) < MAX_COMMENTS:
                comments.append(token.text)
        elif token.kind in ("atom", "quoted"):
            words.append(token.text)
        elif token.kind == "=":
            name, words = _name(words), []
            while i < len(part) and part[i].kind == "comment":
                if len(comments) < MAX_COMMENTS:
                    comments.append(part[i].text)
                i += 1
            if not name or i >= len(part) or part[i].kind not in ("atom", "quoted"):
                continue
            if name not in found and len(found) < MAX_PROPS + 2:
                found[name] = part[i].text
                order.append(name)
            i += 1
    if not order or "." in order[0] or order[0] == "reason":
        return None
    method = order[0].split("/", 1)[0].strip()
    props = {k: found[k] for k in order[1:] if "." in k and k.split(".", 1)[0] and k.split(".", 1)[1]}
    return MethodResult(method=method, result=found[order[0]].lower(), reason=found.get("reason", ""),
                        props=dict(list(props.items())[:MAX_PROPS]), comments=tuple(comments))


def _parse(value: str) -> AuthResults:
    text = value[:MAX_CHARS]
    tokens, problem = _tokens(text)
    if len(value) > MAX_CHARS:
        problem = f"longer than {MAX_CHARS} characters"
    parts = _segments(tokens)
    head = [t for t in parts[0] if t.kind in ("atom", "quoted")]
    if not head or any(t.kind == "=" for t in parts[0]):
        return AuthResults("", problem=problem or "no authserv-id")
    authserv_id = head[0].text.strip()
    version = int(head[1].text) if len(head) > 1 and head[1].text.isdigit() and len(head[1].text) < 4 else None
    rest = [p for p in parts[1:] if p]
    if len(rest) == 1 and [(t.kind, t.text.lower()) for t in rest[0] if t.kind != "comment"] == [("atom", "none")]:
        return AuthResults(authserv_id, version, none=True, problem=problem)
    results = []
    for part in rest:
        result = _resinfo(part)
        if result is None:
            problem = problem or "a part that is not method=result"
        elif len(results) < MAX_RESULTS:
            results.append(result)
        else:
            problem = problem or f"more than {MAX_RESULTS} results"
    if len(value) > MAX_CHARS:
        results = []  # the end was cut off; what was read is not the whole story
    return AuthResults(authserv_id, version, tuple(results), problem=problem)


def parse(value: str) -> AuthResults:
    """One Authentication-Results field value (folded or not); never raises."""
    try:
        return _parse(str(value))
    except Exception:  # hostile input must never stop the screen; report it unreadable instead
        return AuthResults("", problem="unreadable")


_AUTHSERV = re.compile(r"[^\s;()\"=]+")


def domain_of(value: str) -> str:
    """The domain of `user@domain`, `@domain` or `domain`, lower-case, without a trailing dot or
    angle brackets; "" when there is none."""
    value = value.strip().strip("<>").rsplit("@", 1)[-1].strip().rstrip(".").lower()
    return value if value and _AUTHSERV.fullmatch(value) and "." in value else ""


def aligned(a: str, b: str) -> bool:
    """Relaxed alignment without a public-suffix list: the same domain, or one a subdomain of the
    other (mail.clinic.test and clinic.test), and never a bare top-level domain. Two sibling
    subdomains (a.clinic.test, b.clinic.test) do not align here, which errs on the side of holding
    mail back rather than trusting a domain the list would have had to vouch for."""
    a, b = domain_of(a), domain_of(b)
    if not a or not b:
        return False
    short, long_ = sorted((a, b), key=len)
    return "." in short and (long_ == short or long_.endswith("." + short))
