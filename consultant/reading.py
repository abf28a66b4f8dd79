"""Read a raw email: headers decoded, body chosen and split from its history, attachments listed."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message

from consultant.headers import (
    clean_filename,
    clean_text,
    content_type_of,
    decode_bytes,
    decode_header_value,
    decode_payload,
    guess_boundary,
    measure_payload,
    parse_address,
    parse_address_list,
    parse_date,
    parse_msg_ids,
    payload_of,
    raw_header,
    unescape_8bit,
)
from consultant.htmltext import html_to_text
from consultant.mimebounds import Refused, header_block, parse_bounded
from consultant.quotes import split_quoted

__all__ = [
    "Attachment", "Parsed", "Reading", "UnreadableMessage", "decode_header_value", "parse_address",
    "parse_msg_ids", "parse_message", "read_message", "read_parsed",
]

MAX_SUBJECT = 1000
MAX_REFERENCES = 50
MAX_DEFECTS = 50
# HTML is mostly markup; allow this much source per character of text kept.
HTML_SOURCE_FACTOR = 2

_CHARSET_PARAM = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.I)
_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([a-zA-Z0-9._:-]{1,40})""", re.I)
_HEADER_LINE = re.compile(rb"(?:From |[!-9;-~]+:)")
_KNOWN_HEADER = re.compile(
    rb"^(?:from|to|cc|subject|date|message-id|received|return-path|mime-version|content-type"
    rb"|delivered-to|reply-to|sender|dkim-signature|authentication-results|x-[!-9;-~]*)[ \t]*:",
    re.I | re.M)
_PREAMBLE_SCAN = 16_384
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_SINGLE_FIELDS = ("from", "subject", "date", "message-id", "content-type")


class UnreadableMessage(Exception):
    """The message cannot be read at all; an operator has to look at it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Attachment:
    filename: str | None
    content_type: str
    size: int


@dataclass
class Reading:
    from_name: str = ""
    from_addr: str | None = None
    reply_to: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    subject: str = ""
    date: datetime | None = None
    message_id: str | None = None
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    body_text: str = ""
    body_source: str = "none"
    new_text: str = ""
    quoted_text: str = ""
    signature: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)


# --- MIME structure ---------------------------------------------------------------------------

def _filename(part: Message, content_type: str | None) -> str | None:
    disposition = raw_header(part, "content-disposition") or ""
    if "name" not in disposition.lower() and "name" not in (content_type or "").lower():
        return None
    # The parser's own parameter lookup turns 8-bit bytes into "?"; read decoded copies instead.
    probe = Message()
    try:
        if disposition:
            probe["Content-Disposition"] = unescape_8bit(disposition)
        if content_type:
            probe["Content-Type"] = unescape_8bit(content_type)
        return clean_filename(probe.get_filename())
    except Exception:  # RFC 2231 parameters in hostile shapes
        return None


class _Walker:
    """Walks the MIME tree in document order, enforcing the part and depth limits."""

    def __init__(self, max_parts: int, max_depth: int, defects: list[str]) -> None:
        self.max_parts, self.max_depth, self.defects = max_parts, max_depth, defects
        self.count = 0
        self.texts: list[tuple[str, Message]] = []
        self.attachments: list[Attachment] = []
        self.forwarded: list[tuple[Attachment, Message]] = []

    def walk(self, root: Message) -> None:
        stack: list[tuple[Message, int, bool]] = [(root, 0, False)]
        while stack:
            part, depth, hidden = stack.pop()
            self.count += 1
            if self.count > self.max_parts:
                raise UnreadableMessage(f"too many parts: the message has more than {self.max_parts} "
                                        "MIME parts (limits.max_parts)")
            if depth > self.max_depth:
                raise UnreadableMessage(f"nested too deep: MIME parts more than {self.max_depth} "
                                        "levels deep (limits.max_depth)")
            for defect in part.defects:
                name = type(defect).__name__.removesuffix("Defect")
                self.defects.append(_CAMEL.sub(" ", name).lower())
            ctype = content_type_of(part, self.defects)
            payload = payload_of(part)
            if isinstance(payload, list):
                # A forwarded message is one attachment; its parts still count towards the limits.
                if ctype.startswith("message/") and not hidden:
                    filename = _filename(part, raw_header(part, "content-type"))
                    self.attachments.append(Attachment(filename, ctype, 0))
                    self.forwarded.append((self.attachments[-1], part))
                    hidden = True
                children = [c for c in payload if isinstance(c, Message)]
                stack.extend((child, depth + 1, hidden) for child in reversed(children))
            elif hidden:
                continue
            elif ctype.startswith("multipart/"):
                recovered = guess_boundary(part, ctype)
                if recovered is not None:
                    self.defects.append("a multipart without a boundary was read by guessing it")
                    children = payload_of(recovered)
                    stack.extend((child, depth + 1, hidden) for child in reversed(children))
                else:
                    self.defects.append("a multipart without a boundary was read as text")
                    self.texts.append(("text/plain", part))
            else:
                self._leaf(part, ctype)
        # Measured only now: serialising a forwarded message before its parts were counted
        # would do the work the limits exist to refuse.
        for forwarded, part in self.forwarded:
            forwarded.size = measure_payload(part)

    def _leaf(self, part: Message, ctype: str) -> None:
        raw_type = raw_header(part, "content-type")
        filename = _filename(part, raw_type)
        disposition = (raw_header(part, "content-disposition") or "").split(";", 1)[0]
        attached = disposition.strip().lower() == "attachment" or filename is not None
        if ctype in ("text/plain", "text/html") and not attached:
            self.texts.append((ctype, part))
        else:
            self.attachments.append(Attachment(filename, ctype, measure_payload(part)))


# --- Body text --------------------------------------------------------------------------------

def _part_text(part: Message, ctype: str, defects: list[str], limit: int) -> str:
    data = decode_payload(part, defects)
    charset_match = _CHARSET_PARAM.search(raw_header(part, "content-type") or "")
    charset = charset_match.group(1) if charset_match else None
    if charset is None and ctype == "text/html":
        meta = _META_CHARSET.search(data, 0, 4096)
        charset = meta.group(1).decode("ascii") if meta else None
    text, note = decode_bytes(data, charset)
    if note:
        defects.append(note)
    if len(text) > limit:
        defects.append(f"the {ctype} body was cut to {limit} characters")
        text = text[:limit]
    return clean_text(text)


def _choose_body(texts: list[tuple[str, Message]], limit: int,
                 defects: list[str]) -> tuple[str, str]:
    html_part = None
    for ctype, part in texts:
        if ctype == "text/plain":
            text = _part_text(part, ctype, defects, limit)
            if text.strip():  # an empty plain alternative beside real HTML says nothing
                return text, ctype
        elif html_part is None:
            html_part = part
    if html_part is not None:
        source = _part_text(html_part, "text/html", defects, limit * HTML_SOURCE_FACTOR)
        text, note = html_to_text(source)
        if note:
            defects.append(note)
        if len(text) > limit:
            defects.append(f"the text/html body was cut to {limit} characters")
        if text.strip():
            return text[:limit], "text/html"
    return "", "none"


# --- The entry point --------------------------------------------------------------------------

def _skip_preamble(raw: bytes, defects: list[str]) -> bytes:
    """Drop junk (a BOM, blank lines, stray text) that exporters put before the first header."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if _HEADER_LINE.match(raw):
        return raw
    found = _KNOWN_HEADER.search(raw, 0, _PREAMBLE_SCAN)
    if found is None:
        return raw
    defects.append("text before the first header field was skipped")
    return raw[found.start():]


def _header_lists(msg: Message, defects: list[str]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        fields.setdefault(name.lower(), []).append(value)
    for name in _SINGLE_FIELDS:
        if len(fields.get(name, ())) > 1:
            defects.append(f"{len(fields[name])} {name} header fields; the first was used")
    return fields


@dataclass
class Parsed:
    """A message parsed and not read yet: its MIME tree and what was noticed on the way."""

    msg: Message
    defects: list[str]
    # Bytes before the first header were dropped (a BOM, exporters' junk), so the tree's header
    # fields are not those a parse of the raw header block finds (see consultant.finish).
    trimmed: bool


def parse_message(raw: bytes, *, max_parts: int = 200, max_depth: int = 20, max_header_bytes: int = 64 * 1024,
                  max_lines: int = 1_000_000) -> Parsed:
    """Parse raw RFC 5322 bytes within the limits; raises UnreadableMessage when that fails."""
    raw = bytes(raw)
    if not raw.strip():
        raise UnreadableMessage("The message is empty.")
    defects: list[str] = []
    start = _skip_preamble(raw, defects)
    try:
        header_block(start, max_header_bytes)
        # compat32, not policy.default: its header registry re-parses fields on every access,
        # which costs more than the parse itself; headers.py decodes what is needed.
        msg = parse_bounded(start, max_parts=max_parts, max_depth=max_depth, max_lines=max_lines)
    except Refused as exc:
        raise UnreadableMessage(exc.reason) from None
    except RecursionError:
        raise UnreadableMessage(
            f"The message nests MIME parts too deeply to parse (limit {max_depth}, limits.max_depth).") from None
    except Exception as exc:
        raise UnreadableMessage(f"The email parser failed ({type(exc).__name__}).") from None
    return Parsed(msg, defects, trimmed=len(start) != len(raw))


def read_message(raw: bytes, *, max_parts: int = 200, max_depth: int = 20,
                 max_body_chars: int = 1_000_000, max_header_bytes: int = 64 * 1024,
                 max_lines: int = 1_000_000) -> Reading:
    """Read raw RFC 5322 bytes; raises UnreadableMessage only when an operator must look."""
    parsed = parse_message(raw, max_parts=max_parts, max_depth=max_depth, max_header_bytes=max_header_bytes,
                           max_lines=max_lines)
    return read_parsed(parsed, max_parts=max_parts, max_depth=max_depth, max_body_chars=max_body_chars)


def read_parsed(parsed: Parsed, *, max_parts: int = 200, max_depth: int = 20,
                max_body_chars: int = 1_000_000) -> Reading:
    """Read a parsed message (parse_message); raises UnreadableMessage only when an operator must
    look."""
    msg, defects = parsed.msg, list(parsed.defects)
    fields = _header_lists(msg, defects)
    if not fields:
        raise UnreadableMessage("The data has no header fields, so it is not an email.")

    def first(name: str) -> str | None:
        values = fields.get(name)
        return values[0] if values else None

    walker = _Walker(max_parts, max_depth, defects)
    walker.walk(msg)
    body_text, body_source = _choose_body(walker.texts, max_body_chars, defects)
    new_text, quoted_text, signature = split_quoted(body_text)
    from_name, from_addr = parse_address(first("from") or "")
    reply_to = parse_address_list(first("reply-to") or "")
    subject = decode_header_value(first("subject"))
    if len(subject) > MAX_SUBJECT:
        defects.append(f"the subject was cut to {MAX_SUBJECT} characters")
    message_ids = parse_msg_ids(first("message-id") or "")
    return Reading(
        from_name=from_name,
        from_addr=from_addr,
        reply_to=reply_to[0] if reply_to else None,
        to=parse_address_list(", ".join(fields.get("to", ()))),
        cc=parse_address_list(", ".join(fields.get("cc", ()))),
        subject=subject[:MAX_SUBJECT],
        date=parse_date(first("date")),
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=parse_msg_ids(first("in-reply-to") or ""),
        references=parse_msg_ids(first("references") or "")[-MAX_REFERENCES:],
        body_text=body_text,
        body_source=body_source,
        new_text=new_text,
        quoted_text=quoted_text,
        signature=signature,
        attachments=walker.attachments,
        defects=list(dict.fromkeys(defects))[:MAX_DEFECTS],
    )
