"""The IMAP command grammar (RFC 3501 §9, RFC 9051 §9) and modified UTF-7 (RFC 3501 §5.1.3).

The session assembles a whole command first — its lines and literals, ``{n}`` or ``{n+}``
(RFC 7888 LITERAL+), ``~{n}`` (literal8) — then :func:`parse_command` reads it. Every failure is
a :class:`ParseError` (answered BAD); nothing else is raised on any input.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, date, datetime, timedelta, timezone

from caducee.protocols.imap.protocol import (
    AppendItem,
    Command,
    FetchArgs,
    FetchAtt,
    ListArgs,
    ParseError,
    SearchArgs,
    SearchKey,
    Section,
    SelectArgs,
    SeqSet,
    StoreArgs,
)

MAX_NUMBER = 2**63 - 1
#: Prefix of a name that is not valid modified UTF-7: it can match no folder and be created by
#: nobody (services.mailstore refuses control characters), so the answer is NO (RFC 3501).
UNUSABLE_NAME = "\x00"
MAX_SEARCH_DEPTH = 50
_ATOM_SPECIALS = set(b'(){ %*"\\]') | set(range(0x00, 0x20)) | {0x7F}
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

#: A line that ends with a literal announcement: ``{n}``, ``{n+}``, ``~{n}``.
LITERAL_AT_END = re.compile(rb"(~?)\{(\d{1,20})(\+?)\}\r?\n\Z")


# --- modified UTF-7 (RFC 3501 §5.1.3) --------------------------------------------------------


def encode_mutf7(name: str) -> str:
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def decode_mutf7(text: str) -> str:
    """Strict decoding: printable ASCII must not be encoded, no stray '&'."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if not 0x20 <= ord(char) <= 0x7E:
            raise ParseError("nom de dossier invalide (UTF-7 modifie attendu)")
        if char != "&":
            out.append(char)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise ParseError("nom de dossier invalide (UTF-7 modifie)")
        chunk = text[i + 1 : end]
        i = end + 1
        if not chunk:
            out.append("&")
            continue
        if not re.fullmatch(r"[A-Za-z0-9+,]+", chunk):
            raise ParseError("nom de dossier invalide (UTF-7 modifie)")
        padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
        try:
            decoded = base64.b64decode(padded, validate=True).decode("utf-16-be")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ParseError("nom de dossier invalide (UTF-7 modifie)") from None
        if not decoded or any(0x20 <= ord(c) <= 0x7E for c in decoded):
            raise ParseError("nom de dossier invalide (ASCII encode en UTF-7)")
        if encode_mutf7(decoded) != "&" + chunk + "-":
            raise ParseError("nom de dossier invalide (UTF-7 non canonique)")
        out.append(decoded)
    return "".join(out)


# --- the reader ------------------------------------------------------------------------------


class Reader:
    """A cursor over one assembled command."""

    def __init__(self, data: bytes, *, utf8: bool = False) -> None:
        self.data = data
        self.pos = 0
        self.utf8 = utf8

    # low level

    def peek(self, n: int = 1) -> bytes:
        return self.data[self.pos : self.pos + n]

    def at_end(self) -> bool:
        return self.data[self.pos :] in (b"", b"\r\n", b"\n")

    def end(self) -> None:
        if not self.at_end():
            raise ParseError("arguments en trop")

    def take(self, token: bytes) -> bool:
        if self.data[self.pos : self.pos + len(token)].upper() == token.upper():
            self.pos += len(token)
            return True
        return False

    def expect(self, token: bytes) -> None:
        if not self.take(token):
            raise ParseError(f"attendu : {token.decode('ascii', 'replace')}")

    def sp(self) -> None:
        self.expect(b" ")

    def atom(self, extra: bytes = b"") -> str:
        """1*ATOM-CHAR (``extra`` adds allowed characters, e.g. ``]`` in astrings)."""
        start = self.pos
        allowed_extra = set(extra)
        while self.pos < len(self.data):
            byte = self.data[self.pos]
            if byte in _ATOM_SPECIALS and byte not in allowed_extra:
                break
            if byte >= 0x80 and not self.utf8:
                break
            self.pos += 1
        if self.pos == start:
            raise ParseError("atome attendu")
        return self.data[start : self.pos].decode("utf-8", "replace")

    def number(self, *, nonzero: bool = False) -> int:
        match = re.compile(rb"\d+").match(self.data, self.pos)
        if not match or len(match.group()) > 19:
            raise ParseError("nombre attendu")
        self.pos = match.end()
        value = int(match.group())
        if value > MAX_NUMBER or (nonzero and value == 0):
            raise ParseError("nombre invalide")
        return value

    def quoted(self) -> bytes:
        self.expect(b'"')
        out = bytearray()
        while True:
            if self.pos >= len(self.data):
                raise ParseError("chaine non terminee")
            byte = self.data[self.pos]
            self.pos += 1
            if byte == 0x22:
                return bytes(out)
            if byte == 0x5C:
                if self.pos >= len(self.data) or self.data[self.pos] not in (0x22, 0x5C):
                    raise ParseError("echappement invalide")
                byte = self.data[self.pos]
                self.pos += 1
            elif byte in (0x0D, 0x0A, 0x00) or (byte >= 0x80 and not self.utf8):
                raise ParseError("caractere interdit dans une chaine")
            out.append(byte)

    def literal(self, *, allow8: bool = False) -> bytes:
        binary = self.take(b"~")
        if binary and not allow8:
            raise ParseError("literal8 interdit ici")
        match = re.compile(rb"\{(\d{1,20})\+?\}\r?\n").match(self.data, self.pos)
        if not match:
            raise ParseError("litteral invalide")
        size = int(match.group(1))
        start = match.end()
        if start + size > len(self.data):
            raise ParseError("litteral incomplet")
        self.pos = start + size
        data = self.data[start : self.pos]
        if b"\x00" in data and not binary:
            # RFC 3501 §9 / RFC 9051 §9: literal = "{" number64 ["+"] "}" CRLF *CHAR8, and
            # CHAR8 excludes NUL (binary strings are not permitted, RFC 9051 §4.3.1).
            raise ParseError(
                "octet nul interdit dans un litteral (RFC 9051 4.3.1) / "
                "NUL octet not allowed in a literal"
            )
        return data

    def string(self) -> bytes:
        if self.peek() == b'"':
            return self.quoted()
        if self.peek() == b"{" or self.peek(2) == b"~{":
            return self.literal()
        raise ParseError("chaine attendue")

    def astring(self) -> bytes:
        if self.peek() in (b'"', b"{") or self.peek(2) == b"~{":
            return self.string()
        return self.atom(b"]").encode()

    def text_astring(self) -> str:
        value = self.astring()
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("UTF-8 invalide") from None

    def nstring_or_nil(self) -> bytes | None:
        if self.take(b"NIL"):
            return None
        return self.string()

    def mailbox(self) -> str:
        """A mailbox name: UTF-8 once enabled (RFC 6855), else modified UTF-7."""
        raw = self.astring()
        if self.utf8:
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ParseError("nom de dossier : UTF-8 invalide") from None
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            # RFC 9051 §5.1: 8-bit names are UTF-8; accept them when valid
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ParseError("nom de dossier invalide") from None
        try:
            return decode_mutf7(text)
        except ParseError:
            # Not a name any folder can have (a control character leads it): NO, not BAD.
            return UNUSABLE_NAME + text

    def list_mailbox(self) -> str:
        """list-mailbox: like astring, with % and * allowed in atoms."""
        literal = self.peek() in (b'"', b"{") or self.peek(2) == b"~{"
        raw = self.string() if literal else self.atom(b"%*]").encode()
        if self.utf8:
            return raw.decode("utf-8", "replace")
        try:
            return decode_mutf7(raw.decode("ascii"))
        except UnicodeDecodeError:
            return raw.decode("utf-8", "replace")
        except ParseError:
            return UNUSABLE_NAME + raw.decode("ascii")  # matches no folder

    def paren_list(self, item: str = "atom") -> list[str]:
        self.expect(b"(")
        items: list[str] = []
        while not self.take(b")"):
            if items:
                self.sp()
            if item == "flag":
                items.append(self.flag())
            elif item == "astring":
                items.append(self.astring().decode("utf-8", "replace"))
            else:
                items.append(self.atom())
            if len(items) > 10_000:
                raise ParseError("liste trop longue")
        return items

    def flag(self) -> str:
        if self.take(b"\\"):
            if self.take(b"*"):
                return "\\*"
            return "\\" + self.atom()
        return self.atom()

    def seq_number(self) -> int | None:
        if self.take(b"*"):
            return None
        return self.number(nonzero=True)

    def sequence_set(self) -> SeqSet:
        if self.take(b"$"):
            raise ParseError("SEARCHRES ($) non pris en charge")
        ranges: SeqSet = []
        while True:
            low = self.seq_number()
            high = low
            if self.take(b":"):
                high = self.seq_number()
            ranges.append((low, high))
            if len(ranges) > 100_000:
                raise ParseError("ensemble trop long")
            if not self.take(b","):
                return ranges

    def date(self) -> date:
        """date = date-text / DQUOTE date-text DQUOTE (d-Mon-yyyy)."""
        quoted = self.take(b'"')
        match = re.compile(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})").match(self.data, self.pos)
        if not match:
            raise ParseError("date attendue (j-Mmm-aaaa)")
        self.pos = match.end()
        if quoted:
            self.expect(b'"')
        month = match.group(2).decode().capitalize()
        if month not in _MONTHS:
            raise ParseError("mois invalide")
        try:
            return date(int(match.group(3)), _MONTHS.index(month) + 1, int(match.group(1)))
        except ValueError:
            raise ParseError("date invalide") from None

    def date_time(self) -> datetime:
        """RFC 3501 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz"."""
        match = re.compile(
            rb'"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"'
        ).match(self.data, self.pos)
        if not match:
            raise ParseError("date-heure attendue")
        self.pos = match.end()
        groups = [g.decode() for g in match.groups()]
        month = groups[1].capitalize()
        if month not in _MONTHS:
            raise ParseError("mois invalide")
        try:
            offset = timedelta(hours=int(groups[7]), minutes=int(groups[8]))
            tz = timezone(-offset if groups[6] == "-" else offset)
            return datetime(
                int(groups[2]),
                _MONTHS.index(month) + 1,
                int(groups[0].strip()),
                int(groups[3]),
                int(groups[4]),
                int(groups[5]),
                tzinfo=tz,
            ).astimezone(UTC)
        except ValueError:
            raise ParseError("date-heure invalide") from None


# --- commands --------------------------------------------------------------------------------

_TAG = re.compile(rb"[\x21\x23\x24\x26\x27\x2c-\x5b\x5e-\x7a\x7c\x7e]+")


def parse_tag(data: bytes) -> str | None:
    """The tag of a command line, if it has a valid one (for BAD responses)."""
    match = _TAG.match(data)
    return match.group().decode() if match and data[match.end() : match.end() + 1] == b" " else None


def parse_command(data: bytes, *, utf8: bool = False) -> Command:
    """Parse one assembled command (lines and literals). ParseError on any grammar error."""
    reader = Reader(data, utf8=utf8)
    tag = parse_tag(data)
    if tag is None:
        raise ParseError("etiquette invalide")
    reader.pos = len(tag) + 1
    name = reader.atom().upper()
    if name == "UID":
        reader.sp()
        sub = reader.atom().upper()
        if sub not in ("FETCH", "STORE", "SEARCH", "COPY", "MOVE", "EXPUNGE"):
            raise ParseError("commande UID inconnue")
        name = "UID " + sub
    parser = _PARSERS.get(name)
    if parser is None:
        raise ParseError("commande inconnue")
    args = parser(reader)
    reader.end()
    return Command(tag, name, args)


def _none(_r: Reader) -> None:
    return None


def _one_mailbox(r: Reader) -> str:
    r.sp()
    return r.mailbox()


def _two_mailboxes(r: Reader) -> tuple[str, str]:
    r.sp()
    first = r.mailbox()
    r.sp()
    return first, r.mailbox()


def _login(r: Reader) -> tuple[str, str]:
    r.sp()
    user = r.text_astring()
    r.sp()
    return user, r.text_astring()


def _authenticate(r: Reader) -> tuple[str, str | None]:
    r.sp()
    mechanism = r.atom().upper()
    initial: str | None = None
    if r.take(b" "):  # RFC 4959 SASL-IR
        if r.take(b"="):
            initial = "="
        else:
            match = re.compile(rb"[A-Za-z0-9+/]+={0,2}").match(r.data, r.pos)
            if not match:
                raise ParseError("reponse initiale invalide")
            r.pos = match.end()
            initial = match.group().decode()
    return mechanism, initial


def _enable(r: Reader) -> list[str]:
    items = []
    while r.take(b" "):
        items.append(r.atom().upper())
    if not items:
        raise ParseError("ENABLE sans extension")
    return items


def _id(r: Reader) -> list[str]:
    r.sp()
    if r.take(b"NIL"):
        return []
    r.expect(b"(")
    values: list[str] = []
    while not r.take(b")"):
        if values:
            r.sp()
        value = r.nstring_or_nil()
        values.append("" if value is None else value.decode("utf-8", "replace"))
        if len(values) > 60:
            raise ParseError("ID trop long")
    return values


def _select(r: Reader) -> SelectArgs:
    r.sp()
    args = SelectArgs(r.mailbox())
    if r.take(b" ("):
        while not r.take(b")"):
            r.take(b" ")
            option = r.atom().upper()
            if option == "CONDSTORE":
                args.condstore = True
            elif option == "QRESYNC":
                r.sp()
                r.expect(b"(")
                uidvalidity = r.number(nonzero=True)
                r.sp()
                modseq = r.number(nonzero=True)
                known: SeqSet | None = None
                if r.take(b" "):
                    if r.peek() != b"(":
                        known = r.sequence_set()
                        r.take(b" ")
                    if r.take(b"("):  # seq-match-data: accepted, not needed
                        r.sequence_set()
                        r.sp()
                        r.sequence_set()
                        r.expect(b")")
                r.expect(b")")
                args.qresync = (uidvalidity, modseq, known)
            else:
                raise ParseError("parametre de SELECT inconnu")
    return args


def _status(r: Reader) -> tuple[str, list[str]]:
    r.sp()
    name = r.mailbox()
    r.sp()
    items = [item.upper() for item in r.paren_list()]
    if not items:
        raise ParseError("STATUS sans attribut")
    return name, items


def _list(r: Reader) -> ListArgs:
    r.sp()
    args = ListArgs("", [])
    if r.take(b"("):  # RFC 5258 selection options
        args.extended = True
        while not r.take(b")"):
            r.take(b" ")
            args.select_opts.append(r.atom().upper())
        r.sp()
    args.reference = r.mailbox()
    r.sp()
    if r.take(b"("):
        args.extended = True
        while not r.take(b")"):
            r.take(b" ")
            args.patterns.append(r.list_mailbox())
    else:
        args.patterns.append(r.list_mailbox())
    if r.take(b" RETURN ("):
        args.extended = True
        while not r.take(b")"):
            r.take(b" ")
            option = r.atom().upper()
            if option == "STATUS":  # RFC 5819
                r.sp()
                args.status_items = [i.upper() for i in r.paren_list()]
            else:
                args.return_opts.append(option)
    return args


def _lsub(r: Reader) -> ListArgs:
    r.sp()
    reference = r.mailbox()
    r.sp()
    return ListArgs(reference, [r.list_mailbox()])


def _append(r: Reader) -> tuple[str, list[AppendItem]]:
    r.sp()
    name = r.mailbox()
    items: list[AppendItem] = []
    while r.take(b" "):  # RFC 3502 MULTIAPPEND: one or more messages
        flags: list[str] = []
        when: datetime | None = None
        if r.peek() == b"(":
            flags = r.paren_list("flag")
            r.sp()
        if r.peek() == b'"':
            when = r.date_time()
            r.sp()
        literal8 = False
        if r.take(b"UTF8 ("):  # RFC 6855 §4: append-data =/ "UTF8" SP "(" literal8 ")"
            data = r.literal(allow8=True)
            r.expect(b")")
        else:
            # RFC 4466 §2.1.1 append-data = literal / literal8: a bare literal8 is parsed here
            # and refused by the command (we do not advertise BINARY, RFC 3516 §4.3).
            literal8 = r.peek(2) == b"~{"
            data = r.literal(allow8=True)
        items.append(AppendItem(flags, when, data, literal8))
    if not items:
        raise ParseError("message attendu")
    return name, items


# FETCH (RFC 3501 §6.4.5, RFC 9051 §6.4.5, RFC 7162 §3.1.4)

_SIMPLE_FETCH = {
    "FLAGS",
    "INTERNALDATE",
    "RFC822.SIZE",
    "RFC822",
    "RFC822.HEADER",
    "RFC822.TEXT",
    "ENVELOPE",
    "BODYSTRUCTURE",
    "UID",
    "MODSEQ",
    "BODY",
}
_MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}


def _section(r: Reader, binary: bool) -> Section:
    start = r.pos
    r.expect(b"[")
    section = Section()
    path: list[int] = []
    while True:
        match = re.compile(rb"\d+").match(r.data, r.pos)
        if not match:
            break
        if len(path) >= 100:
            raise ParseError("section trop profonde")
        path.append(r.number(nonzero=True))
        if not r.take(b"."):
            break
    section.path = tuple(path)
    if r.peek() != b"]":
        if binary:
            raise ParseError("section BINARY invalide")
        if path and r.data[r.pos - 1 : r.pos] != b".":
            raise ParseError("section invalide")
        text = r.atom().upper()
        if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            r.sp()
            section.fields = [f.lower() for f in r.paren_list("astring")]
            if not section.fields:
                raise ParseError("liste de champs vide")
        elif text not in ("HEADER", "TEXT", "MIME") or (text == "MIME" and not path):
            raise ParseError("section invalide")
        section.text = text
    elif path and r.data[r.pos - 1 : r.pos] == b".":
        raise ParseError("section invalide")
    r.expect(b"]")
    section.raw = r.data[start : r.pos].decode("ascii", "replace")
    return section


def _fetch_att(r: Reader) -> list[FetchAtt]:
    name = r.atom(b"[").upper() if r.peek() != b"[" else ""
    # atom() stops before "[" (not an atom-special), so split it ourselves
    if "[" in name:
        r.pos -= len(name) - name.index("[")
        name = name[: name.index("[")]
    if name in _MACROS:
        return [FetchAtt(n) for n in _MACROS[name]]
    if name in ("BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        if r.peek() != b"[":
            if name == "BODY":
                return [FetchAtt("BODY")]
            raise ParseError("section attendue")
        section = _section(r, name.startswith("BINARY"))
        partial = None
        if r.take(b"<"):
            if name == "BINARY.SIZE":
                raise ParseError("BINARY.SIZE sans partie")
            first = r.number()
            r.expect(b".")
            partial = (first, r.number(nonzero=True))
            r.expect(b">")
        return [FetchAtt(name, section, partial)]
    if name in _SIMPLE_FETCH:
        return [FetchAtt(name)]
    raise ParseError("attribut FETCH inconnu")


def _fetch(r: Reader) -> tuple[SeqSet, FetchArgs]:
    r.sp()
    ranges = r.sequence_set()
    r.sp()
    atts: list[FetchAtt] = []
    if r.take(b"("):
        while not r.take(b")"):
            if atts:
                r.sp()
            atts += _fetch_att(r)
            if len(atts) > 200:
                raise ParseError("trop d'attributs")
    else:
        atts = _fetch_att(r)
    args = FetchArgs(atts)
    if r.take(b" ("):
        while not r.take(b")"):
            r.take(b" ")
            option = r.atom().upper()
            if option == "CHANGEDSINCE":
                r.sp()
                args.changedsince = r.number()
            elif option == "VANISHED":
                args.vanished = True
            else:
                raise ParseError("modificateur de FETCH inconnu")
    return ranges, args


def _store(r: Reader) -> tuple[SeqSet, StoreArgs]:
    r.sp()
    ranges = r.sequence_set()
    r.sp()
    unchangedsince = None
    if r.take(b"("):
        r.expect(b"UNCHANGEDSINCE ")
        unchangedsince = r.number()
        r.expect(b") ")
    mode = ""
    if r.take(b"+"):
        mode = "+"
    elif r.take(b"-"):
        mode = "-"
    item = r.atom().upper()
    if item not in ("FLAGS", "FLAGS.SILENT"):
        raise ParseError("FLAGS ou FLAGS.SILENT attendu")
    r.sp()
    if r.peek() == b"(":
        flags = r.paren_list("flag")
    else:
        flags = [r.flag()]
        while r.take(b" "):
            flags.append(r.flag())
    return ranges, StoreArgs(mode, item.endswith(".SILENT"), flags, unchangedsince)


def _copy(r: Reader) -> tuple[SeqSet, str]:
    r.sp()
    ranges = r.sequence_set()
    r.sp()
    return ranges, r.mailbox()


def _uid_expunge(r: Reader) -> SeqSet:
    r.sp()
    return r.sequence_set()


# SEARCH (RFC 3501 §6.4.4, RFC 4731, RFC 7162 §3.1.5)

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_HEADER_KEYS = {"BCC": "bcc", "CC": "cc", "FROM": "from", "SUBJECT": "subject", "TO": "to"}
_DATE_KEYS = {
    "BEFORE": ("before", False),
    "ON": ("on", False),
    "SINCE": ("since", False),
    "SENTBEFORE": ("before", True),
    "SENTON": ("on", True),
    "SENTSINCE": ("since", True),
}


def _search_text(r: Reader) -> str:
    r.sp()
    value = r.astring()
    return value.decode("utf-8", "replace")


def _search_key(r: Reader, depth: int) -> SearchKey:
    if depth > MAX_SEARCH_DEPTH:
        raise ParseError("recherche trop imbriquee")
    if r.take(b"("):
        keys = [_search_key(r, depth + 1)]
        while r.take(b" "):
            keys.append(_search_key(r, depth + 1))
        r.expect(b")")
        return ("and", keys)
    if r.peek() == b"*" or r.peek().isdigit() or r.peek() == b"$":
        return ("seq", r.sequence_set())
    word = r.atom().upper()
    if word == "ALL":
        return ("all",)
    if word in _FLAG_KEYS:
        flag, wanted = _FLAG_KEYS[word]
        return ("flag", flag, wanted)
    if word == "RECENT":
        return ("recent", True)
    if word == "OLD":
        return ("recent", False)
    if word == "NEW":  # RFC 3501 §6.4.4: RECENT UNSEEN
        return ("and", [("recent", True), ("flag", "\\Seen", False)])
    if word in ("KEYWORD", "UNKEYWORD"):
        r.sp()
        return ("keyword", r.atom(), word == "KEYWORD")
    if word in _HEADER_KEYS:
        return ("header", _HEADER_KEYS[word], _search_text(r))
    if word == "HEADER":
        r.sp()
        name = r.astring().decode("utf-8", "replace").lower()
        return ("header", name, _search_text(r))
    if word in ("BODY", "TEXT"):
        return (word.lower(), _search_text(r))
    if word in _DATE_KEYS:
        r.sp()
        kind, sent = _DATE_KEYS[word]
        return ("date", kind, r.date(), sent)
    if word in ("LARGER", "SMALLER"):
        r.sp()
        return ("size", word.lower(), r.number())
    if word == "UID":
        r.sp()
        return ("uid", r.sequence_set())
    if word == "NOT":
        r.sp()
        return ("not", _search_key(r, depth + 1))
    if word == "OR":
        r.sp()
        first = _search_key(r, depth + 1)
        r.sp()
        return ("or", first, _search_key(r, depth + 1))
    if word == "MODSEQ":  # RFC 7162 §3.1.5
        r.sp()
        if r.take(b'"'):  # entry name and type: accepted, ignored
            while r.peek() not in (b'"', b""):
                r.pos += 1
            r.expect(b'"')
            r.sp()
            r.atom()
            r.sp()
        return ("modseq", r.number())
    raise ParseError("critere de recherche inconnu")


def _search(r: Reader) -> SearchArgs:
    r.sp()
    returns: list[str] | None = None
    if r.take(b"RETURN ("):
        returns = []
        while not r.take(b")"):
            r.take(b" ")
            option = r.atom().upper()
            if option not in ("MIN", "MAX", "ALL", "COUNT"):
                raise ParseError("option RETURN inconnue")
            returns.append(option)
        r.sp()
    charset = None
    if r.take(b"CHARSET "):
        charset = r.astring().decode("ascii", "replace").upper()
        r.sp()
    keys = [_search_key(r, 0)]
    while r.take(b" "):
        keys.append(_search_key(r, 0))
    return SearchArgs(("and", keys), charset, returns)


def _quota_root(r: Reader) -> str:
    r.sp()
    return r.mailbox()


def _get_quota(r: Reader) -> str:
    r.sp()
    return r.mailbox()


def _set_quota(r: Reader) -> str:
    r.sp()
    root = r.astring().decode("utf-8", "replace")
    r.sp()
    r.expect(b"(")
    depth = 1
    while depth and r.pos < len(r.data):  # the list is read and refused by the handler
        byte = r.data[r.pos : r.pos + 1]
        depth += {b"(": 1, b")": -1}.get(byte, 0)
        r.pos += 1
    if depth:
        raise ParseError("liste non terminee")
    return root


_PARSERS = {
    "CAPABILITY": _none,
    "NOOP": _none,
    "LOGOUT": _none,
    "STARTTLS": _none,
    "CHECK": _none,
    "CLOSE": _none,
    "UNSELECT": _none,
    "EXPUNGE": _none,
    "IDLE": _none,
    "NAMESPACE": _none,
    "LOGIN": _login,
    "AUTHENTICATE": _authenticate,
    "ENABLE": _enable,
    "ID": _id,
    "SELECT": _select,
    "EXAMINE": _select,
    "CREATE": _one_mailbox,
    "DELETE": _one_mailbox,
    "RENAME": _two_mailboxes,
    "SUBSCRIBE": _one_mailbox,
    "UNSUBSCRIBE": _one_mailbox,
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status,
    "APPEND": _append,
    "FETCH": _fetch,
    "UID FETCH": _fetch,
    "STORE": _store,
    "UID STORE": _store,
    "COPY": _copy,
    "UID COPY": _copy,
    "MOVE": _copy,
    "UID MOVE": _copy,
    "UID EXPUNGE": _uid_expunge,
    "SEARCH": _search,
    "UID SEARCH": _search,
    "GETQUOTAROOT": _quota_root,
    "GETQUOTA": _get_quota,
    "SETQUOTA": _set_quota,
}
