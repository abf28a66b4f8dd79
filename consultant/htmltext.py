"""HTML bodies as plain text: quoted sections become "> " lines; hostile markup stays bounded."""
from __future__ import annotations

import functools
import html
import re
from typing import Any

from consultant.headers import clean_text

# Each list or quote level indents every line inside it: 100,000 nested <ol><li> would write
# 10^10 spaces. Deeper levels are read as this deep.
MAX_HTML_NESTING = 20

_QUOTE_CLASSES = frozenset({"gmail_quote", "yahoo_quoted"})
# Outlook puts the quoted mail after these markers, not inside them.
_REST_QUOTED_IDS = frozenset({"appendonsend", "divRplyFwdMsg", "stopSpelling",
                              "mail-editor-reference-message-container"})
_BARE_DASHES = re.compile(r"^--$", re.M)
_BLANK_RUN = re.compile(r"\n{3,}")


@functools.cache
def _converter() -> type:
    """The converter class, made on first use: html2text is imported only when HTML is read."""
    import html2text

    class _HtmlText(html2text.HTML2Text):
        """html2text tuned to produce readable text where quoted sections become "> " lines."""

        def __init__(self) -> None:
            super().__init__(bodywidth=0)
            self.ignore_links = True
            self.ignore_images = True
            self.ignore_emphasis = True
            self.unicode_snob = True
            self.single_line_break = True
            # Markdown tables add "---|---" rows; plain rows with spaced cells read better.
            self.ignore_tables = True
            self.tag_callback = _on_tag
            self.forced_quotes = 0
            self.div_quotes: list[bool] = []
            self.rest_quoted = False
            self.capped = {"list": 0, "blockquote": 0}

        def handle_data(self, data: str, entity_char: bool = False) -> None:
            if self.quiet:  # script, style and head text is never shown; style would be CSS-parsed
                return
            # True skips Markdown escaping ("1\." and "\--"): this text is read, not rendered.
            super().handle_data(data, True)

        def start_quote(self) -> bool:
            if self.blockquote >= MAX_HTML_NESTING:
                return False
            self.handle_tag("blockquote", {}, True)
            self.forced_quotes += 1
            return True

    return _HtmlText


def _capped(conv: Any, tag: str, start: bool) -> bool:
    """Swallow list and quote levels beyond MAX_HTML_NESTING, and the ends that match them."""
    kind = "list" if tag in ("ol", "ul") else tag
    if start:
        depth = len(conv.list) if kind == "list" else conv.blockquote
        if depth < MAX_HTML_NESTING:
            return False
        conv.capped[kind] += 1
        return True
    if conv.capped[kind]:
        conv.capped[kind] -= 1
        return True
    return False


def _on_tag(conv: Any, tag: str, attrs: dict, start: bool) -> bool | None:
    if tag in ("ol", "ul", "blockquote") and _capped(conv, tag, start):
        return True
    if start and tag in ("td", "th"):
        conv.space = True  # ignored tables would glue cells: "99213" and "1" into "992131"
        return None
    if not start:
        # Stray end tags would drive html2text's counters negative and silence the rest.
        if tag in ("head", "style", "script") and conv.quiet <= 0:
            return True
        if tag == "blockquote" and conv.blockquote <= conv.forced_quotes:
            return True
        if tag == "div" and conv.div_quotes and conv.div_quotes.pop():
            conv.forced_quotes -= 1
            conv.handle_tag("blockquote", {}, False)
        return None
    if tag not in ("div", "hr"):
        return None
    if tag == "div":
        conv.div_quotes.append(False)
    if not conv.rest_quoted and attrs.get("id") in _REST_QUOTED_IDS:
        conv.rest_quoted = True
        conv.start_quote()
    elif tag == "div" and _QUOTE_CLASSES.intersection((attrs.get("class") or "").split()):
        conv.div_quotes[-1] = conv.start_quote()
    return None


def _defuse(source: str) -> str:
    """Escape each "<" whose tag does not close before the next "<"."""
    # html.parser rescans such a tag to the end of the input at every "<": 250 KB of "<a"
    # took over a minute. Splitting on "<" keeps the work linear.
    if "<" not in source:
        return source
    pieces = source.split("<")
    return pieces[0] + "".join(("<" if ">" in p else "&lt;") + p for p in pieces[1:])


def html_to_text(source: str) -> tuple[str, str | None]:
    """Convert HTML to plain text; the note says when a crude fallback had to be used."""
    converter = _converter()
    try:
        text, note = converter().handle(_defuse(source)), None
    except Exception:  # html2text on hostile markup; losing layout beats losing the message
        text = html.unescape(re.sub(r"<[^<>]*>", " ", source))
        note = "HTML could not be converted cleanly; its tags were stripped"
    # Markdown hard breaks end lines in two spaces; rstrip per line is linear where a
    # "[ \t]+$" regex would backtrack over long runs of spaces inside a <pre>.
    text = "\n".join(line.rstrip(" \t") for line in text.replace("\xa0", " ").split("\n"))
    # Trailing spaces mean nothing in HTML, so a "--" line is a signature delimiter.
    text = _BLANK_RUN.sub("\n\n", _BARE_DASHES.sub("-- ", clean_text(text)))
    return text.strip("\n"), note
