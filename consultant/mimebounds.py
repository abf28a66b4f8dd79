"""Limits enforced while hostile mail is parsed, before the parser can spend unbounded work.

The standard library's feed parser checks every line against every enclosing boundary (work grows
with lines x nesting depth), builds a Message for every part however many there are, and keeps one
string per line. A 400 KB message nested 5,000 deep took over a minute; 3 MB of empty parts held
300 MB. These checks refuse such input early, each naming the setting that refused it.
"""
from __future__ import annotations

import re
from email.feedparser import BufferedSubFile, BytesFeedParser
from email.message import Message

# What the parser accepts as a header line (email.feedparser.headerRE), as bytes, and a line.
_HEADER_START = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")
_HEADER_LINES = re.compile(rb"(?:(?:From |[\x21-\x39\x3b-\x7e]*:|[\t ])[^\r\n]*(?:\r\n|\r|\n))*")
_FEED_CHUNK = 1 << 16


class Refused(Exception):
    """The message is over one of the limits; the reason names the setting."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def header_block_size(raw: bytes, limit: int) -> int | None:
    """Bytes of the header block as the parser reads it (up to the first line that is not a
    header), or None when that is more than limit. Looks at no more than limit + 1 bytes."""
    prefix = raw[:limit + 1]
    end = _HEADER_LINES.match(prefix).end()
    rest = prefix[end:]
    if rest and b"\n" not in rest and b"\r" not in rest and _HEADER_START.match(raw, end):
        if len(prefix) > limit:
            return None  # a header line runs on past the limit
        end = len(prefix)  # the message ends inside its last header line
    return end if end <= limit else None


def header_block(raw: bytes, limit: int) -> bytes:
    """The header lines alone (what the screen needs), refusing a block bigger than limit."""
    size = header_block_size(raw, limit)
    if size is None:
        raise Refused(f"the header block is bigger than {limit} bytes (limits.max_header_bytes)")
    return raw[:size]


def count_lines(raw: bytes) -> int:
    """Lines as the parser splits them: at CRLF, lone CR and lone LF."""
    return raw.count(b"\n") + raw.count(b"\r") - raw.count(b"\r\n")


class _BoundedInput(BufferedSubFile):
    def __init__(self, max_depth: int) -> None:
        super().__init__()
        self.max_depth = max_depth

    def push_eof_matcher(self, pred) -> None:
        # One matcher per enclosing multipart; each line is tested against all of them.
        if len(self._eofstack) > self.max_depth:
            raise Refused(f"nested too deep: MIME parts more than {self.max_depth} levels deep "
                          "(limits.max_depth)")
        super().push_eof_matcher(pred)


class _BoundedParser(BytesFeedParser):
    def __init__(self, max_parts: int, max_depth: int) -> None:
        super().__init__()
        # The parse generator is created but not started, so it will read this input.
        self._input = _BoundedInput(max_depth)
        self.max_parts = max_parts
        self.parts = 0

    def _new_message(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            raise Refused(f"too many parts: the message has more than {self.max_parts} MIME parts "
                          "(limits.max_parts)")
        super()._new_message()


def parse_bounded(raw: bytes, *, max_parts: int, max_depth: int, max_lines: int) -> Message:
    """Parse with compat32, refusing too many lines, parts or nesting levels as it goes."""
    lines = count_lines(raw)
    if lines > max_lines:
        raise Refused(f"too many lines: the message has {lines} lines, more than {max_lines} "
                      "(limits.max_lines)")
    parser = _BoundedParser(max_parts, max_depth)
    # Fed in slices: decoding it all at once would hold one more copy of the whole message.
    for start in range(0, len(raw), _FEED_CHUNK):
        parser.feed(raw[start:start + _FEED_CHUNK])
    return parser.close()
