"""A raw message parsed once into what IMAP FETCH serves without parsing again.

* ENVELOPE (RFC 3501 §7.4.2): raw header values (no RFC 2047 decoding, folding removed), address
  lists with groups, NIL for absent fields; Sender and Reply-To default to From.
* BODYSTRUCTURE with extension data, and BODY (the same without it).
* The byte offsets of every entity (header start, body start, end), so that BODY[1.2.MIME],
  BODY[2.HEADER], BODY[TEXT] and <partial> fetches are slices of the stored bytes (§6.4.5).

The boundary scanner is our own (the stdlib ``email`` package loses offsets). Nothing here
raises on malformed input: a broken message gets a simpler structure, never an exception.
Structures are rendered once to IMAP wire syntax and stored sealed apart from the rest of the
metadata in a compact binary form (:meth:`Structure.to_compact`: the rendered bytes and the
packed entity tree), which a full sync opens without decoding JSON; metadata stored before
issue 17's split kept them in its JSON document (:meth:`Structure.to_meta`, strings holding
bytes as latin-1).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

#: Deeper nesting (multipart in message in multipart ...) is served as opaque leaves.
MAX_DEPTH = 40
#: At most this many entities per message; the rest of the message is one leaf.
MAX_PARTS = 5000

LEAF, MULTI, MESSAGE = 0, 1, 2

_HEADER_END = re.compile(rb"\n\r?\n")
_ENVELOPE_HEADERS = (
    "date",
    "subject",
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "in-reply-to",
    "message-id",
)
_MIME_HEADERS = (
    "content-type",
    "content-transfer-encoding",
    "content-id",
    "content-description",
    "content-disposition",
    "content-language",
    "content-location",
    "content-md5",
)


@dataclass
class Part:
    """One entity: its header is ``raw[start:body]`` (blank line included), its body
    ``raw[body:end]``. A multipart's children are its parts; a message/rfc822's only child is
    the encapsulated message."""

    start: int
    body: int
    end: int
    kind: int = LEAF
    children: list[Part] = field(default_factory=list)

    def to_list(self) -> list[object]:
        return [self.start, self.body, self.end, self.kind, [c.to_list() for c in self.children]]

    @classmethod
    def from_list(cls, data: list[object]) -> Part:
        start, body, end, kind, children = data
        assert isinstance(start, int) and isinstance(body, int) and isinstance(end, int)
        assert isinstance(kind, int) and isinstance(children, list)
        return cls(start, body, end, kind, [cls.from_list(c) for c in children])


class Structure:
    """What FETCH needs: rendered ENVELOPE, BODYSTRUCTURE, BODY, and the entity tree.

    Opened from stored metadata, the tree is built on first use only: a full sync (ENVELOPE,
    BODYSTRUCTURE) never needs it, only sections of bodies do."""

    __slots__ = ("_tree", "_tree_list", "_tree_packed", "body", "bodystructure", "envelope")

    def __init__(
        self,
        envelope: bytes,
        bodystructure: bytes,
        body: bytes,
        tree: Part | None,
        tree_list: list[object] | None = None,
        tree_packed: bytes | None = None,
    ) -> None:
        assert tree is not None or tree_list is not None or tree_packed is not None
        self.envelope, self.bodystructure, self.body = envelope, bodystructure, body
        self._tree, self._tree_list, self._tree_packed = tree, tree_list, tree_packed

    @property
    def tree(self) -> Part:
        if self._tree is None:
            if self._tree_packed is not None:
                self._tree = _unpack_tree(self._tree_packed)
            else:
                assert self._tree_list is not None
                self._tree = Part.from_list(self._tree_list)
            self._tree_list = self._tree_packed = None
        return self._tree

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Structure):
            return NotImplemented
        mine = (self.envelope, self.bodystructure, self.body, self.tree)
        return mine == (other.envelope, other.bodystructure, other.body, other.tree)

    __hash__ = None  # type: ignore[assignment]

    def to_meta(self) -> dict[str, object]:
        return {
            "env": self.envelope.decode("latin-1"),
            "bs": self.bodystructure.decode("latin-1"),
            "body": self.body.decode("latin-1"),
            "tree": self.tree.to_list(),
        }

    @classmethod
    def from_meta(cls, data: dict[str, object]) -> Structure:
        env, bs, body, tree = data["env"], data["bs"], data["body"], data["tree"]
        assert isinstance(env, str) and isinstance(bs, str) and isinstance(body, str)
        assert isinstance(tree, list)
        return cls(env.encode("latin-1"), bs.encode("latin-1"), body.encode("latin-1"), None, tree)

    def to_compact(self) -> bytes:
        """The compact form (:data:`COMPACT_HEAD`): what a full sync reads, with no JSON and no
        object per field: ENVELOPE, BODYSTRUCTURE and BODY as the IMAP bytes, then the entity
        tree as packed integers."""
        tree = _pack_tree(self.tree)
        head = COMPACT_HEAD.pack(
            COMPACT_VERSION, len(self.envelope), len(self.bodystructure), len(self.body)
        )
        return b"".join((head, self.envelope, self.bodystructure, self.body, tree))

    @classmethod
    def from_compact(cls, data: bytes) -> Structure:
        """A structure from :meth:`to_compact`'s bytes: three slices; the tree is unpacked
        only when a section of a body is asked for."""
        version, env, bs, body = COMPACT_HEAD.unpack_from(data)
        if version != COMPACT_VERSION:
            raise ValueError(f"unknown compact structure version {version}")
        a = COMPACT_HEAD.size
        b, c, d = a + env, a + env + bs, a + env + bs + body
        return cls(data[a:b], data[b:c], data[c:d], None, tree_packed=data[d:])


#: The compact structure's head: version, then the lengths of ENVELOPE, BODYSTRUCTURE, BODY.
COMPACT_HEAD = struct.Struct("<BIII")
COMPACT_VERSION = 1
#: Each entity of the packed tree, depth first: start, body, end, kind, number of children
#: (a message is far below 4 GB; at most :data:`MAX_PARTS` entities).
_PACKED_PART = struct.Struct("<IIIBH")


def _pack_tree(tree: Part) -> bytes:
    out: list[bytes] = []
    stack = [tree]
    while stack:
        part = stack.pop()
        out.append(
            _PACKED_PART.pack(part.start, part.body, part.end, part.kind, len(part.children))
        )
        stack.extend(reversed(part.children))
    return b"".join(out)


def _unpack_tree(data: bytes) -> Part:
    """The tree :func:`_pack_tree` packed (iteratively: up to :data:`MAX_PARTS` entities)."""
    items = list(_PACKED_PART.iter_unpack(data))
    if not items:
        raise ValueError("empty packed tree")
    root: Part | None = None
    pending: list[tuple[Part, int]] = []  # a parent and how many children it still awaits
    for start, body, end, kind, count in items:
        part = Part(start, body, end, kind)
        if pending:
            parent, left = pending[-1]
            parent.children.append(part)
            if left == 1:
                pending.pop()
            else:
                pending[-1] = (parent, left - 1)
        elif root is None:
            root = part
        else:
            raise ValueError("packed tree has more than one root")
        if count:
            pending.append((part, count))
    if root is None or pending:
        raise ValueError("truncated packed tree")
    return root


# --- IMAP string syntax (RFC 3501 §4.3, §9) --------------------------------------------------

_QUOTABLE = re.compile(r"[\x01-\x09\x0b\x0c\x0e-\x7f]*")


def istring(value: str | bytes | None) -> bytes:
    """An IMAP nstring: NIL, a quoted string, or a literal for 8-bit / CR / LF content."""
    if value is None:
        return b"NIL"
    data = value.encode("latin-1", "replace") if isinstance(value, str) else value
    data = data.replace(b"\x00", b"")
    if _QUOTABLE.fullmatch(data.decode("latin-1")) and len(data) < 1024:
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def _ilist(items: list[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")" if items else b"NIL"


# --- headers ---------------------------------------------------------------------------------


def header_fields(block: bytes) -> list[tuple[str, str]]:
    """(lower-case name, unfolded raw value as latin-1) for each field of a header block."""
    fields: list[tuple[str, str]] = []
    current: list[bytes] = []
    for line in block.splitlines():
        if line[:1] in (b" ", b"\t") and current:
            current.append(line)
            continue
        if current:
            fields.append(_field(current))
        current = [line] if b":" in line else []
    if current:
        fields.append(_field(current))
    return fields


def _field(lines: list[bytes]) -> tuple[str, str]:
    name, _, first = lines[0].partition(b":")
    value = b"".join([first, *lines[1:]])  # RFC 5322 §2.2.3: unfolding removes CRLF only
    return name.strip().decode("latin-1").lower(), value.strip().decode("latin-1")


def first_headers(raw: bytes, start: int, body: int, wanted: tuple[str, ...]) -> dict[str, str]:
    """The first occurrence of each ``wanted`` field (lower-case names) of the header block
    ``raw[start:body]``: unfolded raw values, read as latin-1."""
    found: dict[str, str] = {}
    for name, value in header_fields(raw[start:body]):
        if name in wanted and name not in found:  # the first occurrence wins
            found[name] = value
    return found


# --- tokens of structured headers (RFC 5322 §3.2, RFC 2045 §5.1) -----------------------------

_SPECIALS = '()<>@,;:\\".[]'


def _tokens(text: str, specials: str, *, comments: bool = False) -> list[tuple[str, str]]:
    """('q', unquoted) for quoted strings, ('s', char) for specials, ('a', atom); comments are
    skipped, or kept as ('c', text) when asked."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":  # comment, nested
            depth = 0
            begin = i
            while i < n:
                if text[i] == "\\":
                    i += 2
                    continue
                if text[i] == "(":
                    depth += 1
                elif text[i] == ")":
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
            if comments:
                stop = i - 1 if text[i - 1 : i] == ")" and i - 1 > begin else i
                out.append(("c", text[begin + 1 : stop].strip()))
        elif c == '"':
            i += 1
            chars: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(text[i])
                i += 1
            i += 1
            out.append(("q", "".join(chars)))
        elif c in specials:
            out.append(("s", c))
            i += 1
        else:
            j = i
            while j < n and text[j] not in specials and text[j] not in ' \t\r\n()"':
                j += 1
            if j == i:  # a stray ")" (or a special not listed): one character on its own
                out.append(("s", c))
                i += 1
                continue
            out.append(("a", text[i:j]))
            i = j
    return out


# --- addresses (RFC 5322 §3.4, RFC 3501 §7.4.2) ----------------------------------------------

Address = tuple[str | None, str | None, str | None, str | None]  # name, adl, mailbox, host
MISSING_HOST = ".MISSING-HOST-NAME."


def _join_phrase(tokens: list[tuple[str, str]]) -> str | None:
    words = [t[1] for t in tokens if t[0] in ("a", "q") or t[1] == "."]
    text = " ".join(words).replace(" .", ".").strip()
    return text or None


def _addr_spec(tokens: list[tuple[str, str]], name: str | None, adl: str | None) -> Address:
    def join(ts: list[tuple[str, str]]) -> str:
        return "".join(f'"{v}"' if k == "q" else v for k, v in ts if k != "c")

    if name is None:  # legacy "user@domain (Real Name)": the comment names the address
        name = next((v for k, v in reversed(tokens) if k == "c" and v), None)

    at = max((i for i, t in enumerate(tokens) if t == ("s", "@")), default=-1)
    if at < 0:
        local, host = join(tokens), MISSING_HOST
    else:
        local, host = join(tokens[:at]), join(tokens[at + 1 :]) or MISSING_HOST
    return (name, adl, local or "MISSING_MAILBOX", host)


def parse_addresses(value: str) -> list[Address]:
    """An address-list header as ENVELOPE address structures, groups included."""
    tokens = _tokens(value, "<>@,;:.[]", comments=True)
    out: list[Address] = []
    i, n = 0, len(tokens)
    in_group = False
    while i < n:
        start = i
        while i < n and tokens[i] not in (("s", "<"), ("s", ":"), ("s", ","), ("s", ";")):
            i += 1
        head = tokens[start:i]
        sep = tokens[i][1] if i < n else ""
        if sep == ":" and not in_group:
            out.append((None, None, _join_phrase(head) or "", None))
            in_group = True
            i += 1
            continue
        if sep == "<":
            j = i + 1
            while j < n and tokens[j] != ("s", ">"):
                j += 1
            inner = [t for t in tokens[i + 1 : j] if t[0] != "c"]
            adl: str | None = None
            colon = next((k for k, t in enumerate(inner) if t == ("s", ":")), -1)
            if colon >= 0:  # obsolete route: @a,@b:local@domain
                adl = "".join(v for _, v in inner[:colon]) or None
                inner = inner[colon + 1 :]
            if inner:
                out.append(_addr_spec(inner, _join_phrase(head), adl))
            i = j + 1
            while i < n and tokens[i] not in (("s", ","), ("s", ";")):
                i += 1
            continue
        if any(kind != "c" for kind, _ in head):  # a lone comment is no address
            out.append(_addr_spec(head, None, None))
        if sep == ";" and in_group:
            out.append((None, None, None, None))
            in_group = False
        i += 1
    if in_group:
        out.append((None, None, None, None))
    return out


def _address_list(value: str | None) -> bytes:
    if value is None:
        return b"NIL"
    addresses = parse_addresses(value)
    return _ilist(
        [b"(" + b" ".join(istring(part) for part in address) + b")" for address in addresses]
    )


def render_envelope(fields: dict[str, str]) -> bytes:
    """RFC 3501 §7.4.2 ENVELOPE from raw header values (absent fields NIL)."""
    sender = fields.get("sender") or fields.get("from")
    reply_to = fields.get("reply-to") or fields.get("from")
    items = [
        istring(fields.get("date")),
        istring(fields.get("subject")),
        _address_list(fields.get("from")),
        _address_list(sender),
        _address_list(reply_to),
        _address_list(fields.get("to")),
        _address_list(fields.get("cc")),
        _address_list(fields.get("bcc")),
        istring(fields.get("in-reply-to")),
        istring(fields.get("message-id")),
    ]
    return b"(" + b" ".join(items) + b")"


# --- MIME headers (RFC 2045, RFC 2183) -------------------------------------------------------


def parse_params(tokens: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``; name=value`` pairs after the main value (RFC 2231 continuations left as they are)."""
    params: list[tuple[str, str]] = []
    i, n = 0, len(tokens)
    while i < n:
        if (
            tokens[i] == ("s", ";")
            and i + 2 < n
            and tokens[i + 1][0] == "a"
            and tokens[i + 2] == ("s", "=")
        ):
            if i + 3 < n and tokens[i + 3][0] in ("a", "q"):
                params.append((tokens[i + 1][1], tokens[i + 3][1]))
                i += 4
            else:
                params.append((tokens[i + 1][1], ""))
                i += 3
            continue
        i += 1
    return params


def _content_type(
    value: str | None, default: tuple[str, str]
) -> tuple[str, str, list[tuple[str, str]]]:
    if value is None:
        return default[0], default[1], []
    tokens = _tokens(value, '()<>@,;:\\"/[]?=')
    if (
        len(tokens) >= 3
        and tokens[0][0] == "a"
        and tokens[1] == ("s", "/")
        and tokens[2][0]
        in (
            "a",
            "q",
        )
    ):
        return tokens[0][1].lower(), tokens[2][1].lower(), parse_params(tokens[3:])
    return "text", "plain", parse_params(tokens)


def _params_list(params: list[tuple[str, str]]) -> bytes:
    return _ilist([istring(name) + b" " + istring(value) for name, value in params])


def _disposition(value: str | None) -> bytes:
    if not value:
        return b"NIL"
    tokens = _tokens(value, '()<>@,;:\\"/[]?=')
    if not tokens or tokens[0][0] != "a":
        return b"NIL"
    return b"(" + istring(tokens[0][1]) + b" " + _params_list(parse_params(tokens[1:])) + b")"


def _language(value: str | None) -> bytes:
    if not value:
        return b"NIL"
    tags = [t[1] for t in _tokens(value, '()<>@,;:\\"/[]?=') if t[0] == "a"]
    return _ilist([istring(tag) for tag in tags])


# --- the entity scanner ----------------------------------------------------------------------


def _body_start(raw: bytes, start: int, end: int) -> int:
    if raw.startswith(b"\r\n", start) and start + 2 <= end:
        return start + 2
    if raw.startswith(b"\n", start) and start + 1 <= end:
        return start + 1
    match = _HEADER_END.search(raw, start, end)
    return match.end() if match else end


def header_end(raw: bytes) -> int:
    """Where the top-level body starts (after the empty line; the end when there is none)."""
    return _body_start(raw, 0, len(raw))


class _Scanner:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.count = 0

    def entity(self, start: int, end: int, depth: int, digest: bool) -> tuple[Part, bytes, bytes]:
        """Parse the entity ``raw[start:end]``: its part, BODYSTRUCTURE and BODY."""
        raw = self.raw
        self.count += 1
        body = _body_start(raw, start, end)
        hdr = first_headers(raw, start, body, _MIME_HEADERS)
        default = ("message", "rfc822") if digest else ("text", "plain")
        ctype, subtype, params = _content_type(hdr.get("content-type"), default)
        part = Part(start, body, end)
        too_deep = depth >= MAX_DEPTH or self.count >= MAX_PARTS
        ext_single = [
            istring(hdr.get("content-md5")),
            _disposition(hdr.get("content-disposition")),
            _language(hdr.get("content-language")),
            istring(hdr.get("content-location")),
        ]
        if ctype == "multipart" and not too_deep:
            boundary = dict((k.lower(), v) for k, v in params).get("boundary")
            children_bs: list[bytes] = []
            children_b: list[bytes] = []
            for child_start, child_end in self._split(body, end, boundary):
                child, bs, b = self.entity(child_start, child_end, depth + 1, subtype == "digest")
                part.children.append(child)
                children_bs.append(bs)
                children_b.append(b)
            if not part.children:  # RFC 3501 needs at least one part: an empty text one
                empty = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'
                part.children.append(Part(end, end, end))
                children_bs.append(empty[:-1] + b" NIL NIL NIL NIL)")
                children_b.append(empty)
            part.kind = MULTI
            ext = [
                _params_list(params),
                _disposition(hdr.get("content-disposition")),
                _language(hdr.get("content-language")),
                istring(hdr.get("content-location")),
            ]
            sub = istring(subtype)
            bodystructure = b"(" + b"".join(children_bs) + b" " + sub + b" " + b" ".join(ext) + b")"
            return part, bodystructure, b"(" + b"".join(children_b) + b" " + sub + b")"
        if ctype == "text" and not params:
            params = [("charset", "us-ascii")]
        encoding = hdr.get("content-transfer-encoding")
        enc_token = encoding.split()[0] if encoding and encoding.split() else "7bit"
        basic = [
            istring(ctype),
            istring(subtype),
            _params_list(params),
            istring(hdr.get("content-id")),
            istring(hdr.get("content-description")),
            istring(enc_token),
            str(end - body).encode(),
        ]
        lines = str(raw.count(b"\n", body, end)).encode()
        if ctype == "message" and subtype in ("rfc822", "global") and not too_deep:
            inner, inner_bs, inner_b = self.entity(body, end, depth + 1, False)
            part.kind = MESSAGE
            part.children.append(inner)
            envelope = render_envelope(
                first_headers(raw, inner.start, inner.body, _ENVELOPE_HEADERS)
            )
            full = [*basic, envelope, inner_bs, lines]
            plain = [*basic, envelope, inner_b, lines]
        elif ctype == "text":
            full = [*basic, lines]
            plain = [*basic, lines]
        else:
            full, plain = list(basic), list(basic)
        return part, b"(" + b" ".join(full + ext_single) + b")", b"(" + b" ".join(plain) + b")"

    def _split(self, body: int, end: int, boundary: str | None) -> list[tuple[int, int]]:
        """The (start, end) of each part between RFC 2046 §5.1.1 delimiter lines."""
        if not boundary:
            return []
        delimiter = b"--" + boundary.encode("latin-1", "replace")
        raw = self.raw
        spans: list[tuple[int, int]] = []
        current: int | None = None
        pos = body
        while pos <= end:
            found = _delimiter_line(raw, delimiter, pos, end)
            if found is None:
                break
            start, after, closing = found
            if current is not None:
                stop = start
                if raw[stop - 2 : stop] == b"\r\n" and stop - 2 >= current:
                    stop -= 2
                elif raw[stop - 1 : stop] == b"\n" and stop - 1 >= current:
                    stop -= 1
                spans.append((current, stop))
            if closing:
                return spans
            current = after
            if after == pos and pos == end:
                break
            pos = max(after, pos + 1)
            if len(spans) + self.count >= MAX_PARTS:
                break
        if current is not None:  # no close delimiter: the last part runs to the end
            spans.append((current, end))
        return spans


def _delimiter_line(
    raw: bytes, delimiter: bytes, pos: int, end: int
) -> tuple[int, int, bool] | None:
    """The next delimiter line in ``raw[pos:end]``: "--boundary", "--" for the close
    delimiter, optional spaces or tabs, then a line end or the end of the span. Returns its
    start, the index after it, and whether it closes the multipart. (A search by plain
    ``find``: a regular expression per boundary is compiled anew for every message.)"""
    while True:
        start = raw.find(delimiter, pos, end)
        if start < 0:
            return None
        if start == 0 or raw[start - 1] == 0x0A:  # at the start of a line
            after = start + len(delimiter)
            closing = raw.startswith(b"--", after, end)
            if closing:
                after += 2
            while after < end and raw[after] in (0x20, 0x09):
                after += 1
            if after == end:
                return start, after, closing
            if raw.startswith(b"\r\n", after, end):
                return start, after + 2, closing
            if raw[after] == 0x0A:
                return start, after + 1, closing
        pos = start + 1


def parse_structure(raw: bytes) -> Structure:
    """Parse a whole message once (never raises on malformed input)."""
    scanner = _Scanner(raw)
    tree, bodystructure, body = scanner.entity(0, len(raw), 0, False)
    envelope = render_envelope(first_headers(raw, 0, tree.body, _ENVELOPE_HEADERS))
    return Structure(envelope, bodystructure, body, tree)


# --- sections (RFC 3501 §6.4.5) --------------------------------------------------------------


def find_part(tree: Part, path: tuple[int, ...]) -> Part | None:
    """The entity a part specifier (1.2.3) names, or None if there is no such part."""
    current = tree
    for index, number in enumerate(path):
        if index > 0 and current.kind == MESSAGE:
            current = current.children[0]
        if current.kind == MULTI:
            if not 1 <= number <= len(current.children):
                return None
            current = current.children[number - 1]
        elif current.kind == MESSAGE and index == 0:
            if number != 1:
                return None
        elif number != 1:
            return None
    return current


def section_span(tree: Part, path: tuple[int, ...], text: str) -> tuple[int, int] | None:
    """Byte span of a section: ``text`` is "", "MIME", "HEADER" (also for HEADER.FIELDS) or
    "TEXT". None when the section does not exist (served as an empty string)."""
    part = find_part(tree, path)
    if part is None:
        return None
    if text == "":
        return (part.start, part.end) if not path else (part.body, part.end)
    if text == "MIME":
        return (part.start, part.body) if path else None
    message = part
    if path:
        if part.kind != MESSAGE:
            return None
        message = part.children[0]
    if text == "HEADER":
        return message.start, message.body
    if text == "TEXT":
        return message.body, message.end
    return None


def filter_header(block: bytes, names: set[str], exclude: bool) -> bytes:
    """HEADER.FIELDS (names) / HEADER.FIELDS.NOT: the matching fields, raw, plus the blank
    line that ends a header (RFC 3501 §6.4.5)."""
    out: list[bytes] = []
    keep = False
    for line in block.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().decode("latin-1").lower() if b":" in line else ""
        keep = bool(name) and ((name in names) != exclude)
        if keep:
            out.append(line)
    return b"".join(out) + b"\r\n"
