"""Robust decoding of header fields, charsets and transfer encodings for hostile mail."""
from __future__ import annotations

import binascii
import codecs
import email
import email.utils
import re
from datetime import datetime, timedelta, timezone
from email.message import Message
from functools import lru_cache

# C0 and C1 controls (bar \t and \n) and lone surrogates: none belongs in stored text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# Bidirectional overrides let a name like "scan\u202egpj.exe" show a different extension.
_BIDI = re.compile(r"[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([bBqQ])\?([^?]*)\?=")
_CHARSET_NAME = re.compile(r"[a-z0-9._:+-]{1,40}")
_MSG_ID = re.compile(r"<([\x21-\x3b\x3d\x3f-\x7e]{1,248})>")
_BARE_MSG_ID = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]{1,248}@[\x21-\x3b\x3d\x3f-\x7e]+")
_ADDR_SPEC = re.compile(r"[^@\s<>()\[\],;:\"\\]{1,64}@[\w.-]{1,190}")
_ANGLE_ADDR = re.compile(r"<\s*([^<>\s@]+@[^<>\s@]+)\s*>")
_ADDR_SPECIALS = re.compile(r"[\s<>()\[\],;:\"\\]+")
# The usual forms, "Display Name <local@domain>" and a bare "local@domain", spelled with nothing
# the standard library's parser reads in a way of its own (quotes, comments, commas, dots in a
# name): split here as it splits them (tested), without its cost (15-35 us an address).
_ATOMS = r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
PLAIN_ADDRESS = re.compile(rf"(?:([A-Za-z0-9'-]+(?: [A-Za-z0-9'-]+)*) )?<({_ATOMS})>|({_ATOMS})")
_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,127}")
_B64_CLEAN = re.compile(rb"[A-Za-z0-9+/]*={0,2}")

# Labels that senders get wrong in a known direction; the wider codec decodes what they meant.
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
    "us-ascii": "ascii", "ascii": "ascii", "ansi_x3.4-1968": "ascii",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "unicode-1-1-utf-7": "utf-7",
}
# Wrongly declared utf-8 is usually windows-1252; these keep more text in their own codec.
_MULTIBYTE_PREFIXES = ("utf-16", "utf-32", "utf-7", "cp93", "cp94", "cp95", "shift", "euc",
                       "iso2022", "gb", "big5", "hz", "johab")
_DATE_ZONE = re.compile(r"\d:\d\d(?::\d\d)?\s*([+-]\d{4}|[A-Za-z]+)?")
_ZONE_NAMES = frozenset({"UT", "UTC", "GMT", "Z", "AST", "ADT", "EST", "EDT", "CST", "CDT", "MST",
                         "MDT", "PST", "PDT"})
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "idna", "punycode",
                           "undefined"})
MAX_ADDRESS_HEADER = 10_000


@lru_cache(maxsize=256)
def codec_for(charset: str | None) -> str | None:
    """Canonical Python codec name for a declared MIME charset, or None when unusable."""
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    if not _CHARSET_NAME.fullmatch(name):
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    # Bytes-to-bytes codecs (base64, zlib) and escape decoders are not charsets.
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Decode text bytes; return the text and a note when a fallback was needed."""
    codec = codec_for(charset)
    if codec is not None:
        try:
            return data.decode(codec), None
        except UnicodeError:
            pass
        except Exception:  # a codec can fail in its own way on hostile input
            codec = None
    elif data.isascii():
        note = f"unknown charset {charset[:40]!r}" if charset else None
        return data.decode("ascii"), note
    try:
        text = data.decode("utf-8")
        return text, f"text declared {charset[:40]!r} read as utf-8" if charset else None
    except UnicodeDecodeError:
        pass
    # A mis-declared multibyte text keeps most of its characters in its own codec.
    if codec is not None and codec.startswith(_MULTIBYTE_PREFIXES):
        try:
            return data.decode(codec, "replace"), f"text is not valid {charset[:40]!r}"
        except Exception:
            pass
    label = repr(charset[:40]) if charset else "undeclared"
    return data.decode("cp1252", "replace"), f"{label} text read as windows-1252"


def clean_text(text: str) -> str:
    """Normalise newlines to \\n and drop control characters other than \\n and \\t."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith("\ufeff"):
        text = text[1:]
    return _CONTROL.sub("", text)


def unescape_8bit(text: str) -> str:
    """Decode the raw 8-bit header bytes that the parser keeps as surrogates."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = text.encode("utf-8", "replace")
    return decode_bytes(data, None)[0]


def _to_str(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("ascii", "surrogateescape")
    return value if isinstance(value, str) else str(value)


def b64decode_lenient(data: bytes) -> tuple[bytes, bool]:
    """Decode base64, salvaging what it can; the flag says the input was damaged."""
    try:
        return binascii.a2b_base64(data), False
    except (binascii.Error, ValueError):
        pass
    core = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    if len(core) % 4 == 1:  # a lone trailing character carries no whole byte
        core = core[:-1]
    core += b"=" * (-len(core) % 4)
    try:
        return binascii.a2b_base64(core), True
    except (binascii.Error, ValueError):
        return b"", True


def _decode_words(text: str) -> str:
    out: list[str] = []
    pending = bytearray()
    pending_charset = ""
    pos = 0
    after_word = False

    def flush() -> None:
        if pending:
            out.append(decode_bytes(bytes(pending), pending_charset)[0])
            pending.clear()

    for match in _ENCODED_WORD.finditer(text):
        gap = text[pos:match.start()]
        # Whitespace between two encoded words is folding, not content (RFC 2047 6.2).
        if gap and not (after_word and gap.isspace()):
            flush()
            out.append(gap)
        charset, kind, payload = match.groups()
        raw = payload.encode("utf-8", "replace")
        data = (binascii.a2b_qp(raw, header=True) if kind in "qQ"
                else b64decode_lenient(raw)[0])
        # Mailers split one multibyte character across words; join bytes before decoding.
        if pending and charset.lower() != pending_charset:
            flush()
        pending_charset = charset.lower()
        pending += data
        pos = match.end()
        after_word = True
    flush()
    out.append(text[pos:])
    return "".join(out)


def decode_header_value(value) -> str:
    """Decode a header value (RFC 2047 words, raw 8-bit bytes), fold whitespace, drop controls."""
    try:
        text = unescape_8bit(_to_str(value))
        if "=?" in text:
            text = _decode_words(text)
        return _CONTROL.sub("", " ".join(text.split()))
    except Exception:  # a header must never stop a message from being read
        return ""


def _valid_addr(addr: str) -> str | None:
    addr = addr.strip()
    if len(addr) > 254 or not _ADDR_SPEC.fullmatch(addr):
        return None
    local, _, domain = addr.rpartition("@")
    domain = domain.strip(".").lower()
    if not domain or ".." in domain:
        return None
    return f"{local}@{domain}"


def _clean_raw(value) -> str:
    return " ".join(unescape_8bit(_to_str(value)).split())[:MAX_ADDRESS_HEADER]


def parse_address(value: str) -> tuple[str, str | None]:
    """Split one address into (display name, addr-spec with lower-cased domain, or None)."""
    if type(value) is str and len(value) <= CACHED_ADDRESS:
        return _parse_address_cached(value)
    return _parse_address(value)


def _parse_address(value) -> tuple[str, str | None]:
    try:
        text = _clean_raw(value)
        plain = PLAIN_ADDRESS.fullmatch(text)
        if plain is not None:
            name, addr = plain.group(1) or "", plain.group(2) or plain.group(3)
        else:
            pairs = email.utils.getaddresses([text])
            name, addr = pairs[0] if pairs else ("", "")
        good = _valid_addr(addr)
        if good is None:
            # getaddresses gives up on unbalanced quotes and bare names; find what is there.
            found = _ANGLE_ADDR.search(text) if "@" in text else None
            if found is not None:
                good, name = _valid_addr(found.group(1)), text[: found.start()]
            else:
                # Splitting on specials stays linear where a regex search would backtrack.
                bare = [word for word in _ADDR_SPECIALS.split(text) if "@" in word]
                good = _valid_addr(bare[0]) if bare else None
                name = text[: text.find(bare[0])] if bare else text.split("<", 1)[0]
            name = name.strip().strip("\"'").strip()
        return decode_header_value(name)[:200], good
    except Exception:
        return "", None


def parse_address_list(value) -> list[str]:
    """Every usable addr-spec in an address-list header, in order, without repeats."""
    if type(value) is str and len(value) <= CACHED_ADDRESS:
        return list(_parse_address_list_cached(value))
    return _parse_address_list(value)


def _parse_address_list(value) -> list[str]:
    try:
        text = _clean_raw(value)
        found = (_valid_addr(addr) for _, addr in email.utils.getaddresses([text]))
        return list(dict.fromkeys(addr for addr in found if addr))
    except Exception:
        return []


# The same senders and our own address come back message after message, and the standard
# library's address parser is slow: remember the answers for header values of a sane length.
CACHED_ADDRESS = 1000
_parse_address_cached = lru_cache(maxsize=4096)(_parse_address)
_parse_address_list_cached = lru_cache(maxsize=4096)(lambda value: tuple(_parse_address_list(value)))


def parse_msg_ids(value: str) -> list[str]:
    """Sane "<...>" message ids in order, without repeats; a lone bare id is bracketed."""
    try:
        text = _to_str(value)
        ids = [f"<{m}>" for m in _MSG_ID.findall(text)]
        if not ids and _BARE_MSG_ID.fullmatch(text.strip()):
            ids = [f"<{text.strip()}>"]
        return list(dict.fromkeys(ids))
    except Exception:
        return []


def parse_date(value) -> datetime | None:
    """A Date header as a datetime: aware when it names a zone, naive when it does not."""
    try:
        text = decode_header_value(value)[:200]
        parts = email.utils.parsedate_tz(text) if text else None
        if not parts:
            return None
        moment = datetime(*parts[:6])
        zone = _DATE_ZONE.search(text)
        zone_name = zone.group(1) if zone else None
        # parsedate_tz reports offset 0 for a missing or unknown zone: the instant is unknown.
        if not zone_name or (zone_name[0] not in "+-" and zone_name.upper() not in _ZONE_NAMES):
            return moment
        return moment.replace(tzinfo=timezone(timedelta(seconds=parts[9] or 0)))
    except Exception:  # out-of-range fields, absurd offsets
        return None


def clean_filename(value) -> str | None:
    """A filename fit to show: decoded, without controls or bidi overrides, ≤ 200 chars."""
    name = _BIDI.sub("", decode_header_value(value)).strip()
    return name[:200] or None


# --- MIME part payloads ----------------------------------------------------------------------

def raw_header(part: Message, name: str) -> str | None:
    """The first raw value of a header field, or None; name is lower-case."""
    for key, value in part.raw_items():
        if key.lower() == name:
            return value
    return None


def payload_of(part: Message) -> str | list | None:
    """The parsed payload as stored: sub-parts, or the body text as the parser kept it."""
    # get_payload() re-decodes an 8-bit body with the declared charset: slow, and it raises
    # on hostile charset names. The parser's own attribute is what every method reads.
    return getattr(part, "_payload", None)


def encoded_payload(part: Message) -> tuple[bytes, str]:
    """A leaf part's payload as the bytes on the wire, and its transfer encoding."""
    payload = payload_of(part)
    if not isinstance(payload, str):
        return b"", ""
    try:  # the parser keeps 8-bit bytes as surrogates; this gives them back
        data = payload.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        data = payload.encode("utf-8", "surrogateescape")
    cte = (raw_header(part, "content-transfer-encoding") or "").strip().strip("\"'").lower()
    return data, cte


def decode_payload(part: Message, defects: list[str]) -> bytes:
    """A leaf part's payload with its transfer encoding undone, as far as it can be."""
    data, cte = encoded_payload(part)
    if cte == "base64":
        data, damaged = b64decode_lenient(data)
        if damaged:
            defects.append("damaged base64 was decoded as far as possible")
    elif cte == "quoted-printable":
        data = binascii.a2b_qp(data)
    elif cte not in ("", "7bit", "8bit", "binary"):
        defects.append(f"unknown transfer encoding {cte[:40]!r} read as-is")
    return data


def measure_payload(part: Message) -> int:
    """Decoded size, computed without decoding where the encoding allows it."""
    payload = payload_of(part)
    if isinstance(payload, list):  # a forwarded message: its size as it would be sent
        try:
            return sum(len(sub.as_bytes()) for sub in payload if isinstance(sub, Message))
        except Exception:
            return 0
    data, cte = encoded_payload(part)
    if cte == "base64":
        core = data.translate(None, b" \t\r\n")
        if _B64_CLEAN.fullmatch(core):
            return len(core.rstrip(b"=")) * 3 // 4
        decoded, _ = b64decode_lenient(data)
        return len(decoded) if decoded else len(data)
    if cte == "quoted-printable":
        return len(binascii.a2b_qp(data))
    return len(data)


def content_type_of(part: Message, defects: list[str]) -> str:
    """Lower-case type/subtype: the default when absent, an attachment type when garbled."""
    value = raw_header(part, "content-type")
    main = value.split(";", 1)[0].split("(", 1)[0].strip().lower() if value else ""
    if not main:
        return part.get_default_type()
    if _MIME_TYPE.fullmatch(main):
        return main
    defects.append("an unreadable Content-Type was treated as an attachment")
    return "application/octet-stream"


def guess_boundary(part: Message, ctype: str) -> Message | None:
    """Re-read a multipart that declares no boundary, using its first "--" line as one."""
    data, _ = encoded_payload(part)
    found = re.search(rb"^--([!-~]{1,70})[ \t]*\r?$", data, re.M)
    if found is None:
        return None
    boundary = found.group(1).rstrip(b"-").replace(b'"', b"")
    if not boundary:  # a rule of dashes, not a boundary
        return None
    head = b'Content-Type: %s; boundary="%s"\n\n' % (ctype.encode(), boundary)
    try:
        recovered = email.message_from_bytes(head + data)
    except Exception:
        return None
    return recovered if recovered.is_multipart() and payload_of(recovered) else None
