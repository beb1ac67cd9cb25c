"""A stored message as a reader sees it: headers, the text or sanitised HTML body, and its
attachments — pure functions over the raw bytes (no I/O).

HTML is cleaned with nh3 (Rust's ammonia): no script, no event handler, no form, no frame, no
``javascript:`` URL; styles are kept only for harmless properties. Images: ``cid:`` references
become ``data:`` URLs of the message's own parts (bounded in size); remote ``http(s)`` images
are removed unless the reader asked for them (the sandboxed frame's CSP enforces it again).
"""

from __future__ import annotations

import base64
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.utils import getaddresses

import nh3
from markupsafe import escape

#: Parts bigger than this are not inlined as ``data:`` images.
MAX_INLINE_IMAGE = 2 * 1024 * 1024
SAFE_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "center", "code", "col", "colgroup", "dd",
    "del", "div", "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
    "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "small", "span", "strike", "strong", "sub",
    "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
SAFE_STYLE = {
    "color", "background-color", "font", "font-family", "font-size", "font-style",
    "font-weight", "text-align", "text-decoration", "line-height", "margin", "margin-left",
    "margin-right", "margin-top", "margin-bottom", "padding", "padding-left", "padding-right",
    "padding-top", "padding-bottom", "border", "border-collapse", "border-color",
    "border-style", "border-width", "width", "height", "max-width", "vertical-align",
    "white-space", "list-style-type", "display",
}  # fmt: skip
_COMMON = {"style", "title", "dir", "lang", "align", "width", "height"}
SAFE_ATTRIBUTES = {
    "*": _COMMON,
    "a": {"href"},
    "img": {"src", "alt"},
    "td": {"colspan", "rowspan", "valign", "bgcolor"},
    "th": {"colspan", "rowspan", "valign", "bgcolor"},
    "table": {"cellpadding", "cellspacing", "border", "bgcolor"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type"},
}
#: Content types an attachment keeps when downloaded; anything else is application/octet-stream.
SAFE_DOWNLOAD_TYPES = {
    "application/pdf", "image/png", "image/jpeg", "image/gif", "text/plain", "text/csv",
    "application/zip", "application/xml", "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.oasis.opendocument.text",
}  # fmt: skip


@dataclass(frozen=True)
class Attachment:
    index: int  # position in the message's walk(), the stable reference in URLs
    filename: str
    content_type: str
    size: int
    content_id: str = ""


@dataclass
class Display:
    subject: str
    sender: str
    to: list[str]
    cc: list[str]
    date: str
    message_id: str
    references: list[str]
    text: str = ""
    html: str = ""  # raw HTML (unsanitised): see :func:`sanitize`
    attachments: list[Attachment] = field(default_factory=list)
    remote_images: bool = False  # the HTML refers to remote images


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _header(message: Message, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # a malformed header: shown as nothing rather than crashing the page
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def _addresses(message: Message, name: str) -> list[str]:
    values = []
    try:
        values = [str(v) for v in message.get_all(name) or []]
    except Exception:
        return []
    return [f"{n} <{a}>" if n else a for n, a in getaddresses(values) if a]


def _payload_text(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except Exception:
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content.replace("\r\n", "\n") if isinstance(content, str) else ""


def _is_attachment(part: Message) -> bool:
    disposition = (part.get_content_disposition() or "").lower()
    return disposition == "attachment" or (
        bool(part.get_filename()) and part.get_content_maintype() not in ("text", "multipart")
    )


def display(raw: bytes) -> Display:
    """Everything a reader sees of ``raw`` (never raises on malformed MIME)."""
    message = parse(raw)
    references = _header(message, "References").split() + _header(message, "In-Reply-To").split()
    shown = Display(
        subject=_header(message, "Subject"),
        sender=", ".join(_addresses(message, "From")) or _header(message, "From"),
        to=_addresses(message, "To"),
        cc=_addresses(message, "Cc"),
        date=_header(message, "Date"),
        message_id=_header(message, "Message-ID"),
        references=references,
    )
    for index, part in enumerate(message.walk()):
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        if _is_attachment(part) or content_type not in ("text/plain", "text/html"):
            if part.get_content_maintype() == "multipart":
                continue
            payload = part.get_payload(decode=True)
            size = len(payload) if isinstance(payload, bytes) else 0
            filename = part.get_filename() or f"piece-jointe-{index}"
            content_id = _header(part, "Content-ID").strip("<>")
            shown.attachments.append(Attachment(index, filename, content_type, size, content_id))
            continue
        if content_type == "text/plain" and not shown.text:
            shown.text = _payload_text(part)
        elif content_type == "text/html" and not shown.html:
            shown.html = _payload_text(part)
    return shown


def part_bytes(raw: bytes, index: int) -> tuple[Message, bytes] | None:
    """The decoded content of the ``index``-th part of the walk (None: no such leaf part)."""
    for position, part in enumerate(parse(raw).walk()):
        if position == index and not part.is_multipart():
            payload = part.get_payload(decode=True)
            return part, payload if isinstance(payload, bytes) else b""
    return None


def download_type(content_type: str) -> str:
    return content_type if content_type in SAFE_DOWNLOAD_TYPES else "application/octet-stream"


def sanitize(html: str, raw: bytes, shown: Display, *, remote_images: bool) -> tuple[str, bool]:
    """Clean ``html`` for the sandboxed frame; returns (clean html, has blocked remote images)."""
    inline: dict[str, str] = {}
    for attachment in shown.attachments:
        if attachment.content_id and attachment.content_type.startswith("image/"):
            found = part_bytes(raw, attachment.index)
            if found is not None and len(found[1]) <= MAX_INLINE_IMAGE:
                encoded = base64.b64encode(found[1]).decode("ascii")
                inline[attachment.content_id] = f"data:{attachment.content_type};base64,{encoded}"
    blocked = False

    def attribute_filter(tag: str, attribute: str, value: str) -> str | None:
        nonlocal blocked
        if tag == "img" and attribute == "src":
            lowered = value.strip().lower()
            if lowered.startswith("cid:"):
                return inline.get(value.strip()[4:].strip("<>"))
            if lowered.startswith("data:image/"):
                return value
            if lowered.startswith(("http://", "https://", "//")):
                if remote_images and lowered.startswith("https://"):
                    return value
                blocked = True
                return None
            return None
        return value

    cleaned = nh3.clean(
        html,
        tags=SAFE_TAGS,
        clean_content_tags={"script", "style", "title", "head"},
        attributes=SAFE_ATTRIBUTES,
        attribute_filter=attribute_filter,
        url_schemes={"http", "https", "mailto", "data", "cid"},
        filter_style_properties=SAFE_STYLE,
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
    return cleaned, blocked


def body_document(raw: bytes, *, remote_images: bool = False) -> str:
    """The HTML document of the message's body: its sanitised HTML part, else its text (CPU
    work: the web mail's ``web.mail_body.body_response`` sends a big one to a worker process)."""
    shown = display(raw)
    if shown.html:
        clean, _blocked = sanitize(shown.html, raw, shown, remote_images=remote_images)
    else:
        clean = f'<pre style="white-space:pre-wrap;font-family:inherit">{escape(shown.text)}</pre>'
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer">'
        "<style>body{font-family:system-ui,sans-serif;margin:0.5rem;color:#1b2a33}"
        "img{max-width:100%;height:auto}</style></head><body>"
        f"{clean}</body></html>"
    )
