"""The SMTP command line grammar (RFC 5321 §4.1.1–4.1.2), with the parameters of the
extensions we offer: SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531), DSN (RFC 3461:
RET, ENVID, NOTIFY, ORCPT) and AUTH= (RFC 4954 §5).

:func:`parse_command` takes one line (without its CRLF) and returns a typed command, or raises
:class:`ParseError` carrying the reply to send; it never raises anything else, whatever the
bytes. Parameter keywords are case-insensitive; parameter values keep their case. The parser
knows no session state: whether a command or a parameter is allowed *now* is the session's
business.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from caducee.protocols.smtp.replies import Reply, bilingual

# RFC 5321 §4.5.3.1: size limits of the parts of a path.
LOCAL_PART_MAX = 64
DOMAIN_MAX = 255
PATH_MAX = 256
#: RFC 3461 §4.4: an ENVID is at most 100 characters.
ENVID_MAX = 100
#: RFC 3461 §4.2: an ORCPT value (type ";" xtext) is at most 500 characters.
ORCPT_MAX = 500
#: RFC 1870: size-value ::= 1*20DIGIT
SIZE_DIGITS_MAX = 20

NOTIFY_EVENTS = ("SUCCESS", "FAILURE", "DELAY")


class ParseError(ValueError):
    """The line does not parse; ``reply`` says why (500/501/504/553/555)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


def _syntax(fr: str, en: str, code: int = 501, enhanced: str = "5.5.4") -> ParseError:
    return ParseError(bilingual(code, enhanced, fr, en))


# --- commands --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    """A parsed path: ``address`` is ``local@domain`` without any source route, "" for ``<>``."""

    address: str
    #: RFC 5321 §4.1.1.3: ``<Postmaster>`` without a domain.
    postmaster: bool = False

    @property
    def is_null(self) -> bool:
        return not self.address

    @property
    def is_ascii(self) -> bool:
        return self.address.isascii()


@dataclass(frozen=True)
class MailParams:
    size: int | None = None
    body: str | None = None  # "7BIT" or "8BITMIME"
    smtputf8: bool = False
    ret: str | None = None  # "FULL" or "HDRS"
    envid: str | None = None  # xtext-decoded
    auth: str | None = None  # RFC 4954 §5, xtext-decoded ("<>" when unknown)


@dataclass(frozen=True)
class RcptParams:
    notify: tuple[str, ...] = ()  # empty: not given
    orcpt: str | None = None  # "addr-type;xtext", verbatim


@dataclass(frozen=True)
class Hello:
    verb: str  # "EHLO" or "HELO"
    domain: str


@dataclass(frozen=True)
class Mail:
    path: Path
    params: MailParams = field(default_factory=MailParams)
    keywords: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rcpt:
    path: Path
    params: RcptParams = field(default_factory=RcptParams)
    keywords: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Auth:
    mechanism: str  # upper-case
    initial: str | None  # the initial response, still base64 ("=" for empty)


@dataclass(frozen=True)
class Simple:
    """DATA, RSET, QUIT, STARTTLS (no argument), NOOP, HELP, VRFY, EXPN (free argument)."""

    verb: str
    argument: str = ""


@dataclass(frozen=True)
class Bdat:
    """RFC 3030 §2: ``BDAT <chunk-size> [LAST]``; the chunk's octets follow the line."""

    size: int
    last: bool


Command = Hello | Mail | Rcpt | Auth | Simple | Bdat

#: RFC 3030 §3: chunk-size is 1*DIGIT; more digits than this cannot be a size we would take.
BDAT_SIZE_DIGITS = 12

#: Commands that take no argument (RFC 5321 §4.1.1; RFC 3207 §4).
NO_ARGUMENT = frozenset({"DATA", "RSET", "QUIT", "STARTTLS"})
#: Commands whose argument is free text or ignored.
FREE_ARGUMENT = frozenset({"NOOP", "HELP", "VRFY", "EXPN"})
KNOWN_VERBS = (
    frozenset({"EHLO", "HELO", "MAIL", "RCPT", "AUTH", "BDAT"}) | NO_ARGUMENT | FREE_ARGUMENT
)

# --- lexical pieces (RFC 5321 §4.1.2, RFC 6531 §3.3 for UTF-8) ---------------------------------

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]"
_DOT_STRING = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_QUOTED_STRING = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x20-\x7e])*"')
_LET_DIG = r"[A-Za-z0-9\u0080-\U0010ffff]"
_SUB_DOMAIN = rf"(?:{_LET_DIG}(?:[A-Za-z0-9\-\u0080-\U0010ffff]*{_LET_DIG})?)"
_DOMAIN = re.compile(rf"{_SUB_DOMAIN}(?:\.{_SUB_DOMAIN})*")
_GENERAL_LITERAL = re.compile(r"[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
# esmtp-value: %d33-60 / %d62-126 / UTF8-non-ascii (RFC 6531 §3.3)
_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e\u0080-\U0010ffff]+")
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-Fa-f]{2})*")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+")


def _bad_xtext() -> ParseError:
    return _syntax("Valeur xtext invalide (RFC 3461)", "Invalid xtext value (RFC 3461)")


def xtext_decode(value: str) -> str:
    """RFC 3461 §4: ``+XX`` is the octet XX; any other xchar stands for itself.
    ParseError if ``value`` is not xtext or does not decode to UTF-8."""
    if not _XTEXT.fullmatch(value):
        raise _bad_xtext()
    out = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "+":
            out.append(int(value[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(ord(value[i]))
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_xtext() from None


def _address_literal(text: str) -> bool:
    """RFC 5321 §4.1.3: ``[IPv4]``, ``[IPv6:...]`` or ``[tag:content]``."""
    if len(text) < 3 or text[0] != "[" or text[-1] != "]":
        return False
    inner = text[1:-1]
    if inner[:5].upper() == "IPV6:":
        try:
            ipaddress.IPv6Address(inner[5:])
        except ValueError:
            return False
        return True
    try:
        ipaddress.IPv4Address(inner)
    except ValueError:
        return _GENERAL_LITERAL.fullmatch(inner) is not None and ":" in inner
    return True


def is_domain(text: str) -> bool:
    """A domain (RFC 5321 §4.1.2 Domain, U-labels allowed) or an address literal."""
    if not text or len(text) > DOMAIN_MAX:
        return False
    if text.startswith("["):
        return _address_literal(text)
    return _DOMAIN.fullmatch(text) is not None


def _bad_path(for_rcpt: bool) -> ParseError:
    if for_rcpt:
        return _syntax("Syntaxe : RCPT TO:<adresse>", "Syntax: RCPT TO:<address>", enhanced="5.1.3")
    return _syntax(
        "Syntaxe : MAIL FROM:<adresse> (ou <>)",
        "Syntax: MAIL FROM:<address> (or <>)",
        enhanced="5.1.7",
    )


def parse_mailbox(text: str) -> bool:
    """Whether ``text`` is ``Local-part "@" (Domain / address-literal)`` within RFC limits."""
    local, at, domain = text.rpartition("@")
    if not at or not local:
        return False
    if local.startswith('"'):
        if _QUOTED_STRING.fullmatch(local) is None:
            return False
    elif _DOT_STRING.fullmatch(local) is None:
        return False
    return len(local.encode("utf-8")) <= LOCAL_PART_MAX and is_domain(domain)


def parse_path(text: str, *, for_rcpt: bool) -> Path:
    """``"<" [ A-d-l ":" ] Mailbox ">"`` or ``<>`` (MAIL only) or ``<Postmaster>`` (RCPT only).

    A source route (``@a,@b:``) is accepted and dropped (RFC 5321 §4.1.1.3, Appendix C).
    """
    if len(text) < 2 or text[0] != "<" or text[-1] != ">":
        raise _bad_path(for_rcpt)
    inner = text[1:-1]
    if len(inner.encode("utf-8")) > PATH_MAX:
        raise _syntax(
            "Adresse trop longue", "Path too long", enhanced="5.1.3" if for_rcpt else "5.1.7"
        )
    if not inner:
        if for_rcpt:
            raise _bad_path(for_rcpt)
        return Path("")
    if for_rcpt and inner.lower() == "postmaster":
        return Path(inner, postmaster=True)
    if inner.startswith("@"):
        route, colon, inner = inner.partition(":")
        if not colon or not all(
            hop.startswith("@") and is_domain(hop[1:]) for hop in route.split(",")
        ):
            raise _bad_path(for_rcpt)
    if not parse_mailbox(inner):
        raise _bad_path(for_rcpt)
    return Path(inner)


def _split_path(argument: str) -> tuple[str, str]:
    """The ``<...>`` path at the start of ``argument`` and the parameters after it.

    The path ends at the first ``>`` outside a quoted string."""
    if not argument.startswith("<"):
        return argument, ""
    quoted = escaped = False
    for index, char in enumerate(argument):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return argument[: index + 1], argument[index + 1 :]
    return argument, ""


def parse_params(text: str) -> dict[str, str | None]:
    """``esmtp-param *(SP esmtp-param)``; keywords upper-cased, values verbatim."""
    params: dict[str, str | None] = {}
    for item in text.split(" "):
        if not item:
            raise _syntax("Espace en trop entre les parametres", "Extra space between parameters")
        keyword, eq, value = item.partition("=")
        if _KEYWORD.fullmatch(keyword) is None or (eq and _VALUE.fullmatch(value) is None):
            raise _syntax("Parametre ESMTP invalide", "Invalid ESMTP parameter")
        key = keyword.upper()
        if key in params:
            raise _syntax(f"Parametre {key} repete", f"Duplicate {key} parameter")
        params[key] = value if eq else None
    return params


def _unsupported(key: str) -> ParseError:
    return ParseError(
        bilingual(555, "5.5.4", f"Parametre {key} non reconnu", f"{key} parameter not recognized")
    )


def _bad_value(key: str) -> ParseError:
    return _syntax(f"Valeur invalide pour {key}", f"Invalid value for {key}")


def _flag(key: str, value: str | None) -> None:
    if value is not None:
        raise _bad_value(key)


def _needs(key: str, value: str | None) -> str:
    if value is None:
        raise _bad_value(key)
    return value


def mail_params(raw: dict[str, str | None]) -> MailParams:
    size: int | None = None
    body = ret = envid = auth = None
    smtputf8 = False
    for key, value in raw.items():
        if key == "SIZE":
            text = _needs(key, value)
            if not text.isascii() or not text.isdigit() or len(text) > SIZE_DIGITS_MAX:
                raise _bad_value(key)
            size = int(text)
        elif key == "BODY":
            body = _needs(key, value).upper()
            if body not in ("7BIT", "8BITMIME"):  # BINARYMIME needs CHUNKING (RFC 3030)
                raise _unsupported(f"BODY={body}")
        elif key == "SMTPUTF8":
            _flag(key, value)
            smtputf8 = True
        elif key == "RET":
            ret = _needs(key, value).upper()
            if ret not in ("FULL", "HDRS"):
                raise _bad_value(key)
        elif key == "ENVID":
            envid = xtext_decode(_needs(key, value))
            if not (0 < len(envid) <= ENVID_MAX and envid.isascii() and envid.isprintable()):
                raise _bad_value(key)
        elif key == "AUTH":
            text = _needs(key, value)
            auth = text if text == "<>" else xtext_decode(text)
        else:
            raise _unsupported(key)
    return MailParams(size, body, smtputf8, ret, envid, auth)


def rcpt_params(raw: dict[str, str | None]) -> RcptParams:
    notify: tuple[str, ...] = ()
    orcpt = None
    for key, value in raw.items():
        if key == "NOTIFY":
            items = tuple(v.upper() for v in _needs(key, value).split(","))
            if items == ("NEVER",):
                notify = items
            elif (
                not items
                or any(i not in NOTIFY_EVENTS for i in items)
                or len(set(items)) != len(items)
            ):
                raise _bad_value(key)
            else:
                notify = items
        elif key == "ORCPT":
            text = _needs(key, value)
            addr_type, semi, xtext = text.partition(";")
            if (
                not semi
                or len(text) > ORCPT_MAX
                or _ADDR_TYPE.fullmatch(addr_type) is None
                or not xtext
                or not text.isascii()
            ):
                raise _bad_value(key)
            xtext_decode(xtext)  # syntax check; the value is kept verbatim
            orcpt = text
        else:
            raise _unsupported(key)
    return RcptParams(notify, orcpt)


def _mail_or_rcpt(verb: str, argument: str) -> Mail | Rcpt:
    for_rcpt = verb == "RCPT"
    prefix = "TO:" if for_rcpt else "FROM:"
    if argument[: len(prefix)].upper() != prefix:
        raise _bad_path(for_rcpt)
    # Tolerated: spaces between the colon and the path ("MAIL FROM: <a@b>"), as most servers.
    rest = argument[len(prefix) :].lstrip(" ")
    path_text, tail = _split_path(rest)
    path = parse_path(path_text, for_rcpt=for_rcpt)
    if tail and not tail.startswith(" "):
        raise _bad_path(for_rcpt)
    tail = tail[1:]
    raw = parse_params(tail) if tail else {}
    keywords = frozenset(raw)
    if for_rcpt:
        return Rcpt(path, rcpt_params(raw), keywords)
    return Mail(path, mail_params(raw), keywords)


def _hello(verb: str, argument: str) -> Hello:
    domain = argument.strip(" ")
    # RFC 5321 §4.1.1.1: a domain or an address literal. Clients on networks without a DNS
    # name send all sorts of things; we accept any single token of printable text.
    if not domain or " " in domain or not domain.isprintable():
        raise _syntax(f"Syntaxe : {verb} <nom de domaine>", f"Syntax: {verb} <domain>")
    return Hello(verb, domain)


def _auth(argument: str) -> Auth:
    parts = argument.split(" ")
    if not parts[0] or len(parts) > 2 or _KEYWORD.fullmatch(parts[0].replace("_", "-")) is None:
        raise _syntax("Syntaxe : AUTH <mecanisme> [reponse]", "Syntax: AUTH <mechanism> [response]")
    initial = parts[1] if len(parts) == 2 else None
    if initial is not None and not initial:
        raise _syntax("Syntaxe : AUTH <mecanisme> [reponse]", "Syntax: AUTH <mechanism> [response]")
    return Auth(parts[0].upper(), initial)


def decode_line(line: bytes) -> str:
    """The command line as text (UTF-8, RFC 6531), or ParseError (500 5.5.2)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(
            bilingual(500, "5.5.2", "Ligne non UTF-8", "Command line is not UTF-8")
        ) from None
    if any(c < " " or c == "\x7f" for c in text if c != "\t"):
        raise ParseError(
            bilingual(500, "5.5.2", "Caractere de controle interdit", "Control character")
        )
    return text


def _bdat(argument: str) -> Bdat:
    """RFC 3030 §3: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF."""
    parts = argument.split(" ")
    size_text = parts[0]
    last = len(parts) == 2 and parts[1].upper() == "LAST"
    if (
        not size_text.isascii()
        or not size_text.isdigit()
        or len(size_text) > BDAT_SIZE_DIGITS
        or len(parts) > 2
        or (len(parts) == 2 and not last)
    ):
        raise ParseError(
            bilingual(
                501,
                "5.5.4",
                "Syntaxe : BDAT <taille> [LAST]",
                "Syntax: BDAT <chunk-size> [LAST]",
            )
        )
    return Bdat(int(size_text), last)


def parse_command(line: bytes) -> Command:
    """One command line without its line ending; ParseError for anything malformed."""
    text = decode_line(line)
    verb, space, argument = text.partition(" ")
    verb = verb.upper()
    if verb not in KNOWN_VERBS:
        raise ParseError(bilingual(500, "5.5.1", "Commande inconnue", "Unknown command"))
    if verb in NO_ARGUMENT:
        if argument.strip(" "):
            raise ParseError(
                bilingual(
                    501, "5.5.4", "Cette commande ne prend pas d'argument", "No argument expected"
                )
            )
        return Simple(verb)
    if verb in FREE_ARGUMENT:
        return Simple(verb, argument.strip(" "))
    if not space:
        argument = ""
    if verb in ("EHLO", "HELO"):
        return _hello(verb, argument)
    if verb == "AUTH":
        return _auth(argument.strip(" "))
    if verb == "BDAT":
        return _bdat(argument.strip(" "))
    return _mail_or_rcpt(verb, argument.rstrip(" "))
