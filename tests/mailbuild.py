"""Builders of synthetic raw messages for the reading tests: every message here is made up."""
from __future__ import annotations

import base64
import quopri

from consultant.reading import Reading, read_message

ENVELOPE = {
    "From": "Jane Doe <jane@clinic.test>",
    "To": "ask@consult.test",
    "Subject": "Coding question",
    "Date": "Tue, 3 Mar 2026 10:02:00 -0500",
    "Message-ID": "<q1@clinic.test>",
    "MIME-Version": "1.0",
}


def _line(name: str, value: str | bytes) -> bytes:
    return name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()) + b"\r\n"


def entity(content_type: str | None, body: bytes, **headers: str | bytes) -> bytes:
    """One MIME entity: its header lines (Content_Type style names), a blank line, its body."""
    head = _line("Content-Type", content_type) if content_type else b""
    head += b"".join(_line(name.replace("_", "-"), value) for name, value in headers.items())
    return head + b"\r\n" + body


def text(body: str, charset: str = "utf-8", cte: str | None = None, **headers: str) -> bytes:
    """A text/plain entity encoded in charset and, optionally, a transfer encoding."""
    return typed("text/plain", body, charset, cte, **headers)


def html(body: str, charset: str = "utf-8", cte: str | None = None, **headers: str) -> bytes:
    return typed("text/html", body, charset, cte, **headers)


def typed(ctype: str, body: str, charset: str, cte: str | None, **headers: str) -> bytes:
    raw = body.encode(charset)
    if cte == "base64":
        raw = base64.encodebytes(raw)
    elif cte == "quoted-printable":
        raw = quopri.encodestring(raw)
    if cte:
        headers["Content_Transfer_Encoding"] = cte
    return entity(f"{ctype}; charset={charset}", raw, **headers)


def multipart(subtype: str, *parts: bytes, boundary: str = "b-outer") -> bytes:
    b = boundary.encode()
    body = b"".join(b"--" + b + b"\r\n" + part + b"\r\n" for part in parts) + b"--" + b + b"--\r\n"
    return entity(f'multipart/{subtype}; boundary="{boundary}"', body)


def attachment(ctype: str, payload: bytes, filename: str = "scan.pdf") -> bytes:
    return entity(ctype, base64.encodebytes(payload), Content_Transfer_Encoding="base64",
                  Content_Disposition=f'attachment; filename="{filename}"')


def mail(top: bytes, **headers: str | bytes | None) -> bytes:
    """A whole message: envelope fields (None drops one), then the top entity."""
    fields = {**ENVELOPE, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return b"".join(_line(k, v) for k, v in fields.items() if v is not None) + top


def read(top: bytes, **headers: str | bytes | None) -> Reading:
    return read_message(mail(top, **headers))
