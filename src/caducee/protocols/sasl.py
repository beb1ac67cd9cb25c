"""SASL pieces every mail door shares: the base64 client response and the PLAIN mechanism.

SMTP AUTH (RFC 4954), IMAP AUTHENTICATE (RFC 3501 §6.2.2, RFC 9051 §6.2.2, SASL-IR RFC 4959)
and POP3 AUTH (RFC 5034) carry the same SASL exchanges (RFC 4422) in base64; each door only
frames the lines and renders the refusal in its own reply syntax. The bearer mechanisms
(OAUTHBEARER, XOAUTH2) are parsed in :mod:`caducee.protocols.sasl_bearer`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field


class SaslError(ValueError):
    """A client response the mechanism refuses. ``authorization`` marks a well-formed PLAIN
    message naming someone else as authorization identity (IMAP answers it
    ``NO [AUTHORIZATIONFAILED]``, RFC 5530 §3); every other refusal is a syntax error."""

    def __init__(self, fr: str, en: str, *, authorization: bool = False) -> None:
        super().__init__(en)
        self.fr = fr
        self.en = en
        self.authorization = authorization

    @property
    def text(self) -> str:
        """French first, then English, ASCII only (fits every door's reply line)."""
        return f"{self.fr} / {self.en}"


def decode_response(response: str | bytes) -> bytes:
    """One base64 client response (RFC 4422 §3 and §5, framed by each door's RFC).

    ``=`` is the empty response (RFC 4954 §4, RFC 4959 §3, RFC 5034 §4). The rest must be
    strict base64 (RFC 4648 §4): the standard alphabet, padding included, no whitespace.
    """
    if response in ("=", b"="):
        return b""
    try:
        raw = response.encode("ascii") if isinstance(response, str) else response
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):  # UnicodeEncodeError is a ValueError
        raise SaslError(
            "Reponse base64 illisible", "Cannot Base64-decode client response"
        ) from None


@dataclass(frozen=True)
class PlainCredentials:
    """A PLAIN message, decoded; nothing is verified yet."""

    authcid: str
    password: str = field(repr=False)  # never in a traceback or a log
    authzid: str = ""


def parse_plain(message: bytes) -> PlainCredentials:
    """RFC 4616 §2: ``message = [authzid] UTF8NUL authcid UTF8NUL passwd``.

    Exactly two NULs; each field strict UTF-8 (SAFE excludes NUL only); ``authcid`` and
    ``passwd`` are ``1*SAFE``, so neither may be empty. An ``authzid`` is accepted only when it
    names the authentication identity itself (logins are addresses, compared without case):
    acting as someone else is not offered (RFC 4616 §2 leaves that to the server's policy).
    """
    parts = message.split(b"\x00")
    if len(parts) != 3:
        raise SaslError("Reponse PLAIN mal formee", "Malformed PLAIN response")
    try:
        authzid, authcid, password = (part.decode("utf-8") for part in parts)
    except UnicodeDecodeError:
        raise SaslError("Reponse PLAIN mal formee", "Malformed PLAIN response") from None
    if not authcid or not password:
        raise SaslError("Reponse PLAIN incomplete", "Incomplete PLAIN response")
    if authzid and authzid.casefold() != authcid.casefold():
        raise SaslError(
            "Identite d'autorisation differente non prise en charge",
            "Authorization identity other than the login is not supported",
            authorization=True,
        )
    return PlainCredentials(authcid, password, authzid)
