"""The searchable text of a message: decoded header values and text parts, casefolded — what
IMAP SEARCH HEADER/BODY/TEXT match substrings against (RFC 3501 §6.4.4)."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import compat32

from caducee.domain.message_meta import decode_header_value
from caducee.domain.mime_structure import header_fields


@dataclass
class Text:
    headers: dict[str, str]  # lower-case name -> decoded values, casefolded, "\n"-joined
    body: str  # decoded text parts, casefolded


def searchable_fields(fields: list[list[str]]) -> dict[str, str]:
    """:func:`~caducee.domain.message_meta.header_texts` as :attr:`Text.headers` has them: by
    lower-case name, the values casefolded and ``"\\n"``-joined (SEARCH HEADER matches them)."""
    found: dict[str, list[str]] = {}
    for name, value in fields:
        found.setdefault(name, []).append(value.casefold())
    return {name: "\n".join(values) for name, values in found.items()}


def _body_text(message: Message) -> str:
    chunks: list[str] = []
    for part in message.walk():
        if part.get_content_maintype() != "text":
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception:  # noqa: S112 - malformed parts are skipped
            continue
        if not isinstance(payload, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            chunks.append(payload.decode(charset, "replace"))
        except LookupError:
            chunks.append(payload.decode("utf-8", "replace"))
    return "\n".join(chunks)


def extract_text(raw: bytes) -> Text:
    head_end = raw.find(b"\r\n\r\n")
    head = raw[: head_end + 4] if head_end >= 0 else raw
    headers: dict[str, list[str]] = {}
    for name, value in header_fields(head):
        headers.setdefault(name, []).append(
            decode_header_value(value.encode("latin-1").decode("utf-8", "replace")).casefold()
        )
    try:
        body = _body_text(message_from_bytes(raw, policy=compat32))
    except Exception:
        body = raw[head_end + 4 :].decode("utf-8", "replace") if head_end >= 0 else ""
    return Text({k: "\n".join(v) for k, v in headers.items()}, body.casefold())
