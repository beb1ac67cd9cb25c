"""What the triage reads of a message: its subject and its text (pure, never raises).

A message given as bytes is an RFC 5322 message when it starts with a header section (a known
field such as From, Subject, Date, Content-Type, then an empty line); otherwise the whole text is
the body. The body is the text/plain parts, or the HTML parts stripped of their markup when the
message has no plain text. A practice's triage settings can be read from JSON (``rules_from_json``):
the shape its settings page and ``caducee triage --types FILE`` share.
"""

from __future__ import annotations

import re
from email import message_from_bytes
from email.message import Message
from email.policy import default
from html.parser import HTMLParser
from typing import Any

from caducee.domain.triage import DEFAULT_TYPES, MessageType, Triage, TriageRules, classify

_HEADER_LINE = re.compile(rb"^[!-9;-~]+:[ \t]?", re.ASCII)
_KNOWN_FIELDS = (
    b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
    b"received", b"return-path", b"reply-to", b"cc", b"delivered-to",
)  # fmt: skip
_TYPE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def looks_like_message(raw: bytes) -> bool:
    """Whether ``raw`` starts with an RFC 5322 header section naming a known field."""
    head, sep, _ = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    if not sep:
        return False
    lines = head.split(b"\n")
    if not lines or not _HEADER_LINE.match(lines[0]):
        return False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            continue  # a folded continuation
        if not _HEADER_LINE.match(line):
            return False
    names = {line.split(b":", 1)[0].strip().lower() for line in lines if b":" in line}
    return any(name in names for name in _KNOWN_FIELDS)


class _TextOfHtml(HTMLParser):
    _SKIP = frozenset(("script", "style", "head", "title"))
    _BREAKS = frozenset(("p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "td", "blockquote"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOfHtml()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: S110 - malformed markup: what was read so far is the text
        pass
    return re.sub(r"[ \t]+", " ", "".join(parser.parts)).strip()


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return ""
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def message_text(raw: bytes) -> tuple[str, str]:
    """(subject, body) of an RFC 5322 message, or ("", text) for plain text."""
    if not looks_like_message(raw):
        return "", raw.decode("utf-8", "replace")
    try:
        message = message_from_bytes(raw, policy=default)
        subject = str(message.get("subject", "") or "")
    except Exception:
        return "", raw.decode("utf-8", "replace")
    plain: list[str] = []
    html: list[str] = []
    try:
        for part in message.walk():
            if part.is_multipart() or part.get_content_disposition() == "attachment":
                continue
            content_type = part.get_content_type()
            if content_type == "text/plain":
                plain.append(_part_text(part).strip())
            elif content_type == "text/html":
                html.append(html_to_text(_part_text(part)))
    except Exception:  # noqa: S110 - a malformed part ends the walk; what was read is kept
        pass
    return subject, "\n\n".join(plain) if plain else "\n\n".join(html)


def classify_raw(raw: bytes, rules: TriageRules) -> Triage:
    """The type and urgency of a raw patient message (CPU work: a big one runs in a worker
    process, ``health.patient_triage.classify_message``)."""
    try:
        subject, body = message_text(raw)
    except Exception:  # message_text never raises; this is the last guard of a patient message
        subject, body = "", raw[:200_000].decode("utf-8", "replace")
    return classify(subject, body, rules)


def rules_from_json(data: Any) -> TriageRules:
    """A practice's triage settings from JSON: ``{"default_type": id, "types": [{"id",
    "label_fr", "label_en", "enabled", "keywords"}]}``. A default type omitted from ``types``
    keeps its place with its default labels; ``ValueError`` names what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("an object with « types » is expected")
    given = data.get("types", [])
    if not isinstance(given, list):
        raise ValueError("« types » must be a list")
    types: dict[str, MessageType] = {t.id: t for t in DEFAULT_TYPES}
    for entry in given:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise ValueError("every type needs an « id »")
        type_id = entry["id"]
        if not _TYPE_ID.match(type_id):
            raise ValueError(f"type id « {type_id} »: lower-case letters, digits, - and _")
        base = types.get(type_id, MessageType(type_id, type_id, type_id))
        keywords = entry.get("keywords", list(base.keywords))
        if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
            raise ValueError(f"type « {type_id} »: « keywords » must be a list of strings")
        types[type_id] = MessageType(
            type_id,
            str(entry.get("label_fr", base.label_fr)),
            str(entry.get("label_en", base.label_en)),
            bool(entry.get("enabled", base.enabled)),
            tuple(k for k in keywords if k.strip()),
        )
    default_type = data.get("default_type", TriageRules().default_type)
    if default_type not in types:
        raise ValueError(f"default type « {default_type} » is not a type")
    return TriageRules(tuple(types.values()), str(default_type))
