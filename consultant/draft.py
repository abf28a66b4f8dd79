"""Draft: render the reply (subject, text, HTML) and fix its threading headers."""
from __future__ import annotations

import itertools
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.filters import do_wordwrap
from markupsafe import Markup

from .extract import Findings
from .lookup import CodeFacts
from .modifiers import meaning

ANSWER, NO_CODES, UNKNOWN_CODES, REJECTED = "answer", "no_codes", "unknown_codes", "rejected"
KINDS = (ANSWER, NO_CODES, UNKNOWN_CODES, REJECTED)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ADDR = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+")
_MSGID = re.compile(r"<[^<>\s\"\\]{1,250}>")
EXCERPT_CHARS = 600
MAX_REFERENCES = 20


@dataclass
class Rendered:
    subject: str
    text: str
    html: str


@dataclass
class ReplyDraft:
    kind: str
    to_addr: str
    subject: str
    text: str
    html: str
    message_id: str
    in_reply_to: str | None
    references: str | None


class Fields(dict):
    """A dict whose keys are attributes too. Jinja2 looks `c.code` up as an attribute first; on a
    plain dict that fails with an exception before the key is tried, and that was most of the
    rendering time. Names of dict methods (items, keys...) stay methods, as on a plain dict."""

    __slots__ = ("__dict__", "block_key")

    def __init__(self, **fields) -> None:
        super().__init__(fields)
        self.__dict__.update(fields)
        if not _DICT_NAMES.isdisjoint(fields):
            for name in _DICT_NAMES.intersection(fields):
                del self.__dict__[name]
        self.block_key = None  # set by code_context: stands for the content, see code_block


_DICT_NAMES = frozenset(dir(dict))


def _as_fields(items) -> list:
    return [Fields(**item) if isinstance(item, dict) else item for item in items]


BLOCK_CACHE = 4096  # rendered code blocks kept per environment


class _Environment(Environment):
    def get_template(self, name, parent=None, globals=None):
        """Templates are loaded once (auto_reload is off) and then found in a plain dict: Jinja2's
        own cache reorders a list on every look-up, and every reply looks up the templates it
        extends and includes."""
        if globals or not isinstance(name, str):
            return super().get_template(name, parent, globals)
        if parent is not None:
            name = self.join_path(name, parent)
        loaded = self.__dict__.setdefault("_loaded", {})
        template = loaded.get(name)
        if template is None:
            template = loaded[name] = super().get_template(name)
        return template

    def make_globals(self, d):
        """The globals of a template as a plain dict, not a ChainMap over the environment's: every
        render copies them, and a ChainMap is copied key by key in Python. All of ours are set
        when the environment is made, before any template is loaded."""
        return {**self.globals, **(d or {})}


@lru_cache(maxsize=8)
def environment(templates: Path) -> Environment:
    env = _Environment(loader=FileSystemLoader(str(templates)), undefined=StrictUndefined,
                       autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                       auto_reload=False)  # loaded once: a changed template takes a restart

    # The same descriptions and notes are wrapped again and again: remember the answers.
    @lru_cache(maxsize=4096)
    def wrapped(text, kind, width, break_long_words, wrapstring, break_on_hyphens) -> str:
        return do_wordwrap(env, text, width, break_long_words, wrapstring, break_on_hyphens)

    def wordwrap(text, width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True):
        return wrapped(text, type(text), width, break_long_words, wrapstring, break_on_hyphens)

    env.filters["wordwrap"] = wordwrap
    env.globals["code_block"] = _code_blocks(env)
    return env


def _code_blocks(env: Environment):
    """`code_block(c, "txt"|"html")`: reply/_code.<part>.j2 rendered for one code. It depends on
    `c` alone, and a batch asks about the same codes again and again, so each distinct `c` is
    rendered once. The key is the `block_key` that code_context gives it, or else its repr (the
    same repr, the same values in the same order)."""
    blocks: dict[tuple, str] = {}

    def code_block(c: dict, part: str) -> str:
        key = (part, getattr(c, "block_key", None) or repr(c))
        text = blocks.get(key)
        if text is None:
            if len(blocks) >= BLOCK_CACHE:
                blocks.clear()
            text = env.get_template(f"reply/_code.{part}.j2").render(c=c)
            text = blocks[key] = Markup(text) if part == "html" else text  # the template escaped it
        return text

    return code_block


def render(templates: Path, name: str, **context) -> Rendered:
    """Render the three templates of one reply kind; the subject is forced onto one clean line."""
    env = environment(templates)
    subject = env.get_template(f"reply/{name}.subject.j2").render(**context)
    return Rendered(subject=one_line(subject),
                    text=env.get_template(f"reply/{name}.txt.j2").render(**context),
                    html=env.get_template(f"reply/{name}.html.j2").render(**context))


def one_line(value: str, limit: int = 200) -> str:
    """Header-safe text: no CR, LF or other control characters, folded spaces, bounded length."""
    return " ".join(_CONTROL.sub(" ", value or "").split())[:limit]


def safe_address(value: str | None) -> str | None:
    """An addr-spec we are willing to put in a header, or None."""
    return value if value and len(value) <= 254 and _ADDR.fullmatch(value) else None


def safe_msg_ids(values) -> list[str]:
    return [v for v in values if v and _MSGID.fullmatch(v)]


def reply_subject(subject: str) -> str:
    subject = one_line(subject)
    if not subject:
        return "Re: your coding question"
    return subject if re.match(r"(?i)re\s*:", subject) else f"Re: {subject}"


def new_message_id(question_id: int, domain: str) -> str:
    return f"<cc.{question_id}.{secrets.token_hex(8)}@{domain}>"


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def choose_kind(findings: Findings, facts: list[CodeFacts]) -> str:
    if not findings.asked():
        return NO_CODES
    return ANSWER if any(f.known for f in facts) else UNKNOWN_CODES


def code_context(findings: Findings, facts: list[CodeFacts]) -> list[dict]:
    """One dict per asked code, merging what was found in the text with what we know."""
    out = []
    for found, fact in zip(findings.asked(), facts):
        about, serial = _about(fact)
        known, title, description, family, addon, billable, source, descriptor, notes, related = about
        c = Fields(code=found.code, system=found.system, known=known, title=title, description=description,
                   family=family, addon=addon, billable=billable, source=source, units=found.units,
                   from_range=found.from_range, descriptor=descriptor, notes=notes,
                   modifiers=[Fields(code=m, meaning=meaning(m)) for m in found.modifiers], related=related)
        # Everything in c follows from these (meaning() is a fixed table), so equal keys, equal c.
        c.block_key = (serial, found.code, found.system, found.units, found.from_range, tuple(found.modifiers))
        out.append(c)
    return out


# What the reply says about a code's facts, made once per CodeFacts object. Facts are not changed
# once made (the Lookup shares one object between all the questions that ask about the code).
_ABOUT: dict[int, tuple[CodeFacts, tuple, int]] = {}
_SERIALS = itertools.count()
ABOUT_CACHE = 4096


def _about(fact: CodeFacts) -> tuple[tuple, int]:
    entry = _ABOUT.get(id(fact))
    if entry is not None and entry[0] is fact:
        return entry[1], entry[2]
    if len(_ABOUT) >= ABOUT_CACHE:
        _ABOUT.clear()
    about = (fact.known, fact.title, fact.description, fact.family_title, fact.addon, fact.billable, fact.source,
             fact.descriptor,
             {k: v[:3] for k, v in fact.notes.items() if k in ("excludes1", "code_first", "use_additional")},
             [Fields(code=r.code, title=r.title, kind=r.kind) for r in fact.related])
    serial = next(_SERIALS)
    _ABOUT[id(fact)] = (fact, about, serial)  # holding the fact keeps its id from being reused
    return about, serial


def draft_reply(*, question_id: int, templates: Path, domain: str, service_name: str,
                from_name: str, to_addr: str, subject: str, message_id: str | None,
                references: list[str], new_text: str, findings: Findings,
                facts: list[CodeFacts], warnings: list[dict] = (),
                suggestions: list[dict] = ()) -> ReplyDraft:
    """Build the reply for one question. `facts` line up with findings.asked(); `warnings` are the
    pair, unit, modifier and status checks; `suggestions` are codes that may fit a question that
    gave none, for the reviewer to confirm."""
    kind = choose_kind(findings, facts)
    codes = code_context(findings, facts)
    context = dict(
        kind=kind, service_name=service_name, asker=one_line(from_name, 80) or "there",
        subject=one_line(subject), re_subject=reply_subject(subject), excerpt=excerpt(new_text),
        known=[c for c in codes if c["known"]], unknown=[c for c in codes if not c["known"]],
        procedures=[c for c in codes if c["known"] and c["system"] != "ICD-10-CM"],
        diagnoses=[c for c in codes if c["known"] and c["system"] == "ICD-10-CM"],
        quoted=[f.code for f in findings.quoted()],
        mentioned_modifiers=[Fields(code=m, meaning=meaning(m)) for m in findings.modifiers],
        warnings=_as_fields(warnings), suggestions=_as_fields(suggestions),
    )
    rendered = render(templates, kind, **context)
    parent = safe_msg_ids([message_id or ""])
    chain = safe_msg_ids(references)[-(MAX_REFERENCES - 1):] + parent
    return ReplyDraft(kind=kind, to_addr=to_addr, subject=rendered.subject or reply_subject(subject),
                      text=rendered.text, html=rendered.html,
                      message_id=new_message_id(question_id, domain),
                      in_reply_to=parent[0] if parent else None,
                      references=" ".join(dict.fromkeys(chain)) or None)
