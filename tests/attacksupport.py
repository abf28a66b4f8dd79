"""Hostile mail for the attack tests: script payloads in every field that comes from mail, and a
checker that parses a page and names every element or attribute that could run script."""
from __future__ import annotations

import secrets
import shutil
from email.utils import encode_rfc2231
from html.parser import HTMLParser

from mailbuild import attachment, entity, html, mail, multipart, text

# Each payload sets window.pwned (and some call alert) if it ever runs.
PAYLOADS = (
    '<script>window.pwned=1;alert("s")</script>',
    '<img src=x onerror="window.pwned=2">',
    "<svg/onload=window.pwned=3>",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.pwned=4>",
    '<a href="javascript:window.pwned=5">j</a>',
    '<div style="width:expression(window.pwned=6)">',
    "</textarea><script>window.pwned=7</script>",
    '"><svg onload="window.pwned=8">',
    "'><img src=x onerror=window.pwned=9>",
    '<iframe srcdoc="<script>parent.pwned=10</script>">',
    "{{ 7*7 }}{% print 7*7 %}",
)
SHORT = '"><img src=x onerror=window.pwned=11>'  # where a field is cut short (names, headers)
# Only characters an address allows, quotes and equals signs among them; and template syntax.
LOCAL = "jo'onfocus='window.pwned=13'autofocus='{{7*7}}"
RLO = "scan\u202efdp.exe"  # shows as "scanexe.pdf" unless the override is neutralised
ALL = " ".join(PAYLOADS)
OUR_SCRIPT = "/static/desk.js"
DANGEROUS_TAGS = {"img", "iframe", "frame", "frameset", "object", "embed", "applet", "math", "mglyph",
                  "style", "base", "video", "audio", "source", "marquee", "xmp", "noscript", "template"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "data", "srcdoc", "background", "poster"}


def database_copy(request, kind: str, folder, source: str | None = None) -> str:
    """The URL of a new database of `kind` ("sqlite" or "postgres"): a copy of the seeded one, or of
    `source` (a URL this function gave; on PostgreSQL nobody may be connected to it)."""
    if kind == "sqlite":
        path = folder / f"attacks-{secrets.token_hex(4)}.db"
        shutil.copyfile(source.removeprefix("sqlite:///") if source else request.getfixturevalue("seeded_sqlite"), path)
        return f"sqlite:///{path}"
    template = source.rsplit("/", 1)[1] if source else request.getfixturevalue("pg_template")
    return request.getfixturevalue("pg_cluster").create_database(template=template)


def hostile_question(n: int = 1) -> bytes:
    """A drafted-to-be question whose subject, sender, attachment names and types, text and HTML
    bodies all carry the payloads; it asks about 99213 so the codes panel has a card."""
    body = f"Can I bill 99213 with modifier 25?\r\n{ALL}\r\n{RLO}\r\n"
    page = f"<html><body><p>Is 99213 right?</p>{ALL}<p>{RLO}</p></body></html>"
    top = multipart(
        "mixed",
        multipart("alternative", text(body), html(page), boundary="b-alt"),
        attachment("application/pdf", b"%PDF-1.4\n", filename='x.pdf"><img src=x onerror=window.pwned=12>.pdf'),
        entity("application/x-'{{7*7}}", b"AAAA\r\n", Content_Transfer_Encoding="base64",
               Content_Disposition="attachment; filename*=" + encode_rfc2231(RLO + SHORT, "utf-8")),
    )
    return mail(top, From=f'"{SHORT} {RLO}" <{LOCAL}@clinic.test>', Subject=f"{SHORT} 99213 {RLO} {{{{ 7*7 }}}}",
                Message_ID=f"<hostile{n}@clinic.test>", MIME_Version="1.0")


def html_only_question(n: int = 2) -> bytes:
    """Only an HTML body: the desk shows its text, never the HTML."""
    shown = "&lt;script&gt;window.pwned=14&lt;/script&gt; &lt;img src=x onerror=window.pwned=15&gt;"
    return mail(html(f"<html><body><p>Is 99214 right? {shown}</p>{ALL}</body></html>"),
                Subject=f"html {SHORT}", Message_ID=f"<hostile-html{n}@clinic.test>")


class Live(HTMLParser):
    """Collects what a browser could run: foreign scripts, event handlers, javascript: URLs, inline
    styles and elements that should never appear on a desk page; and the page's visible text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.text: list[str] = []
        self.textareas: list[str] = []
        self.fields: dict[str, str] = {}  # input name -> value
        self._in_textarea = False
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag in DANGEROUS_TAGS:
            self.found.append(f"<{tag}>")
        if tag == "script":
            self._in_script = True
            if values.get("src") != OUR_SCRIPT:
                self.found.append(f"<script src={values.get('src')!r}>")
        if tag == "textarea":
            self._in_textarea = True
            self.textareas.append("")
        if tag == "input" and values.get("value"):
            self.fields[values.get("name") or f"#{len(self.fields)}"] = values["value"]
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.found.append(f"<{tag} {name}=...>")
            if name in URL_ATTRIBUTES and value is not None:
                cleaned = "".join(ch for ch in value if ch > " ").lower()
                if not cleaned.startswith(("/", "#", "http://www.w3.org/")) or cleaned.startswith("//"):
                    self.found.append(f"<{tag} {name}={value!r}>")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "textarea":
            self._in_textarea = False

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._in_textarea = False
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.found.append("inline script")
        if self._in_textarea:
            self.textareas[-1] += data
        self.text.append(data)


def inspect(page: str) -> Live:
    parser = Live()
    parser.feed(page)
    parser.close()
    return parser


def assert_inert(page: str, where: str, shows: tuple[str, ...] = ()) -> Live:
    """Nothing on the page could run, and each of `shows` is on it as text or in a field (so the
    hostile field really was on the page)."""
    parsed = inspect(page)
    assert parsed.found == [], f"{where}: live markup {parsed.found}"
    visible = "".join(parsed.text) + "\n".join(parsed.fields.values())
    for piece in shows:
        assert piece in visible, f"{where}: {piece!r} is not shown as text"
    assert "\u202e" not in visible, f"{where}: a hidden right-to-left override is on the page"
    return parsed
