"""What we precompute from a message once, at delivery: decoded headers, a snippet, (from
version 2) the IMAP ENVELOPE, BODYSTRUCTURE and section offsets (``domain/mime_structure``),
and (from version 3) every field of the top-level header, decoded, for SEARCH HEADER on any
field without reading the message again (``fields``, bounded by :data:`HEADER_BLOCK_BYTES`).

Headers are read from our own scan of the message (the fields the IMAP ENVELOPE is built from);
the snippet's text part, when it needs it, goes through the stdlib's fast ``compat32`` policy.
RFC 2047 encoded words and 8-bit (RFC 6532) headers are decoded here. Malformed input never
raises: a broken header or body just yields less metadata.
"""

from __future__ import annotations

import json
import quopri
from collections.abc import Iterator
from email.header import Header, decode_header, make_header
from email.parser import BytesParser
from email.policy import compat32
from typing import Any

from caducee.domain.mime_structure import (
    LEAF,
    Part,
    Structure,
    first_headers,
    header_end,
    header_fields,
    parse_structure,
)

#: 2: + "imap"; 3: + "fields" (older metadata: what it lacks is computed from the raw message,
#: off the event loop, when first needed); 4: "imap" is stored apart, in the compact form of
#: :meth:`~caducee.domain.mime_structure.Structure.to_compact` (:func:`split_meta`), so that a
#: full sync decodes ~1 kB of bytes instead of a 2.2 kB JSON document (issue 17).
META_VERSION = 4
SNIPPET_CHARS = 200
_SNIPPET_SOURCE_BYTES = 8192
HEADERS = ("Subject", "From", "To", "Cc", "Date", "Message-ID", "In-Reply-To", "References")
_HEADER_KEYS = tuple(name.lower() for name in HEADERS)


def _unescape(value: str) -> str:
    """compat32 keeps undecodable 8-bit bytes as surrogates: read them as UTF-8."""
    try:
        return value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return value


def _from_latin1(value: str) -> str:
    """A raw header value (bytes read as latin-1) with its 8-bit bytes read as UTF-8 (RFC 6532),
    undecodable ones replaced."""
    if value.isascii():
        return value
    return value.encode("latin-1").decode("utf-8", "replace")


def decode_header_value(value: Any) -> str:
    """A header value as people read it (RFC 2047 words decoded, folding removed)."""
    if isinstance(value, Header):  # compat32 wraps raw 8-bit headers (RFC 6532) this way
        text = "".join(
            part.decode("utf-8", "replace") if isinstance(part, bytes) else part
            for part, _charset in decode_header(value)
        )
    else:
        text = _unescape(str(value))
    try:
        decoded = str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError, AssertionError):
        decoded = text
    return " ".join(decoded.split())


#: Of the top-level header block, at most this much is kept in ``fields``: a field beyond it
#: (a hostile sender's 64 kB of headers) is not found by SEARCH HEADER.
HEADER_BLOCK_BYTES = 64 * 1024


def header_texts(raw: bytes, body: int | None = None) -> list[list[str]]:
    """The fields of the top-level header block (its first :data:`HEADER_BLOCK_BYTES`), in
    order: ``[lower-case name, value as people read it]`` (unfolded, RFC 2047 words and 8-bit
    UTF-8 decoded). ``body``: where the body starts, when the caller knows it."""
    end = header_end(raw) if body is None else body
    block = raw[: min(end, HEADER_BLOCK_BYTES)]
    return [
        [name, decode_header_value(_from_latin1(value))] for name, value in header_fields(block)
    ]


#: Of a text part, at most this much is parsed for the snippet: enough for
#: ``_SNIPPET_SOURCE_BYTES`` decoded bytes even in quoted-printable's worst case (3 octets each).
_SNIPPET_PART_BYTES = 3 * _SNIPPET_SOURCE_BYTES + 1024


def _text_leaves(tree: Part) -> Iterator[Part]:
    """The leaf entities in the order ``Message.walk()`` visits them."""
    stack = [tree]
    while stack:
        part = stack.pop()
        if part.kind == LEAF:
            yield part
        else:
            stack.extend(reversed(part.children))


def _snippet(raw: bytes, tree: Part) -> str:
    """The first words of the first inline text/plain part, decoded."""
    parser = BytesParser(policy=compat32)
    for leaf in _text_leaves(tree):
        header = parser.parsebytes(raw[leaf.start : leaf.body], headersonly=True)
        if header.get_content_type() != "text/plain":
            continue
        if (header.get("Content-Disposition") or "").lower().startswith("attachment"):
            continue
        cut = leaf.end
        if cut - leaf.body > _SNIPPET_PART_BYTES:  # cut after a whole line
            cut = raw.rfind(b"\n", leaf.body, leaf.body + _SNIPPET_PART_BYTES) + 1 or cut
        # What Message.get_payload(decode=True) does, without parsing the part line by line
        # for the usual encodings; the others (base64, uuencode) go through the stdlib.
        encoding = str(header.get("content-transfer-encoding", "")).lower()
        if encoding == "quoted-printable":
            payload: Any = quopri.decodestring(raw[leaf.body : cut])
        elif encoding in ("", "7bit", "8bit", "binary"):
            payload = raw[leaf.body : cut]
        else:
            try:
                payload = parser.parsebytes(raw[leaf.start : cut]).get_payload(decode=True)
            except (ValueError, LookupError, AssertionError):
                return ""
        if not isinstance(payload, bytes):
            return ""
        charset = header.get_content_charset() or "utf-8"
        try:
            text = payload[:_SNIPPET_SOURCE_BYTES].decode(charset, "replace")
        except LookupError:
            text = payload[:_SNIPPET_SOURCE_BYTES].decode("utf-8", "replace")
        return _first_words(text)
    return ""


def _first_words(text: str) -> str:
    """``" ".join(text.split())[:SNIPPET_CHARS]``, without splitting all of a long text: a
    prefix will do once its collapsed form has a word boundary past the snippet's end."""
    size = 4 * SNIPPET_CHARS
    while size < len(text):
        collapsed = " ".join(text[:size].split())
        if collapsed.rfind(" ") >= SNIPPET_CHARS:  # the words up to the cut are whole
            return collapsed[:SNIPPET_CHARS]
        size *= 4
    return " ".join(text.split())[:SNIPPET_CHARS]


def extract_meta(raw: bytes) -> dict[str, Any]:
    """Decoded headers (lower-case keys), a text snippet, the IMAP structure (``imap``) and
    every top-level header field (``fields``, see :func:`header_texts`); ``v`` is the format
    version.

    The MIME structure is scanned once (``parse_structure``); the stdlib parser then reads
    only the one text part the snippet comes from.
    """
    structure = parse_structure(raw)
    first = first_headers(raw, 0, structure.tree.body, _HEADER_KEYS)
    meta: dict[str, Any] = {"v": META_VERSION}
    for name in HEADERS:
        raw_value = first.get(name.lower())
        meta[name.lower()] = (
            "" if raw_value is None else decode_header_value(_from_latin1(raw_value))
        )
    try:
        meta["snippet"] = _snippet(raw, structure.tree)
    except Exception:  # broken MIME is stored as-is, without a snippet
        meta["snippet"] = ""
    meta["imap"] = structure.to_meta()
    meta["fields"] = header_texts(raw, structure.tree.body)
    return meta


def split_meta(meta: dict[str, Any]) -> tuple[bytes, bytes]:
    """What is sealed of a complete metadata document (:func:`extract_meta`'s, or an older
    one completed): the JSON document without its IMAP structure (headers, snippet, header
    fields: what the webmail's lists and SEARCH read), as version :data:`META_VERSION`, and
    the structure in compact form (what FETCH reads)."""
    rest = {key: value for key, value in meta.items() if key != "imap"}
    rest["v"] = META_VERSION
    compact = Structure.from_meta(meta["imap"]).to_compact()
    return json.dumps(rest, ensure_ascii=False).encode(), compact


def parsed_parts(raws: dict[int, bytes]) -> dict[int, tuple[dict[str, object], list[list[str]]]]:
    """(IMAP structure, header fields) of raw messages by id: what metadata stored before
    format 3 lacks (CPU work: a worker process's, see ``services.mailstore.reseal``)."""
    parts: dict[int, tuple[dict[str, object], list[list[str]]]] = {}
    for message_id, raw in raws.items():
        structure = parse_structure(raw)
        parts[message_id] = (structure.to_meta(), header_texts(raw, structure.tree.body))
    return parts


def compact_structures(raws: dict[int, bytes]) -> dict[int, bytes]:
    """Compact IMAP structures (``Structure.to_compact``) of raw messages by id (CPU work: a
    worker process's, see ``services.mailstore.load_structures``)."""
    return {message_id: parse_structure(raw).to_compact() for message_id, raw in raws.items()}
