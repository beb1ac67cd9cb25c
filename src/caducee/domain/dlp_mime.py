"""The texts of a message the DLP reads: subject, text/plain and text/html parts (HTML reduced
to its text) and attachment file names. Never raises on malformed MIME; bounded: at most
:data:`MAX_MESSAGE_BYTES` of the message are parsed, :data:`MAX_PARTS` parts visited."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import Message
from html import unescape
from html.parser import HTMLParser

#: Bytes of a message parsed (attachments beyond are not looked at).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
#: MIME parts visited at most.
MAX_PARTS = 200
#: Characters kept of one decoded text part.
MAX_PART_CHARS = 200_000


class _TextOfHtml(HTMLParser):
    """The visible text of an HTML document: data outside script and style, blocks on lines."""

    BLOCKS = frozenset({"p", "div", "br", "li", "tr", "td", "th", "h1", "h2", "h3", "table"})
    HIDDEN = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.pieces.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.pieces.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.pieces.append(data)


def html_text(html: str) -> str:
    """The text a reader sees of ``html`` (tags removed, entities decoded)."""
    parser = _TextOfHtml()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser is lenient; stay safe on anything odd
        return unescape(html)
    return "".join(parser.pieces)


def _decoded(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except Exception:
        try:
            payload = part.get_payload(decode=True)
        except Exception:
            payload = None
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content[:MAX_PART_CHARS] if isinstance(content, str) else ""


def _header(message: Message, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:
        return ""
    return str(value) if value is not None else ""


def _filename(part: Message) -> str:
    try:
        return part.get_filename() or ""
    except Exception:
        return ""


def _leaf_type(part: Message) -> str:
    """The content type of a leaf part, "" for a multipart (or an unreadable) one."""
    try:
        return "" if part.is_multipart() else part.get_content_type()
    except Exception:
        return ""


def message_texts(raw: bytes) -> Iterator[tuple[str, str]]:
    """``(where, text)`` pairs: ("sujet", …), ("texte", …), ("html", …), ("nom de fichier", …)."""
    try:
        message = email.message_from_bytes(raw[:MAX_MESSAGE_BYTES], policy=email.policy.default)
    except Exception:
        return
    subject = _header(message, "Subject")
    if subject:
        yield ("sujet", subject)
    try:
        parts = list(message.walk())[:MAX_PARTS]
    except Exception:
        return
    for part in parts:
        content_type = _leaf_type(part)
        if not content_type:
            continue
        filename = _filename(part)
        if filename:
            yield ("nom de fichier", filename)
        if content_type == "text/plain":
            yield ("texte", _decoded(part))
        elif content_type == "text/html":
            yield ("html", html_text(_decoded(part)))
