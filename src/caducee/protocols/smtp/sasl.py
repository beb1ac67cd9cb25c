"""SASL mechanisms for SMTP AUTH (RFC 4954), behind a small registry.

A mechanism turns the client's responses into :class:`Credentials` (or asks for more with a
:class:`Challenge`); it verifies nothing: the handler checks the credentials with the services.
PLAIN (RFC 4616) and LOGIN are built in; a later mechanism (OAUTHBEARER, RFC 7628, or XOAUTH2)
is one more class registered with :meth:`SaslRegistry.register`, producing credentials of kind
``"token"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from caducee.protocols.sasl import SaslError, parse_plain
from caducee.protocols.sasl_bearer import parse_oauthbearer, parse_xoauth2


@dataclass(frozen=True)
class Challenge:
    """Send ``334 base64(data)`` and wait for the client's next response."""

    data: bytes


@dataclass(frozen=True)
class Credentials:
    """What the client claims; ``secret`` is a password or a bearer token (per ``kind``)."""

    mechanism: str
    authcid: str
    secret: str
    authzid: str = ""
    kind: Literal["password", "token"] = "password"

    def __repr__(self) -> str:  # never show the secret, even in a traceback
        return f"Credentials(mechanism={self.mechanism!r}, authcid={self.authcid!r})"


@dataclass(frozen=True)
class Malformed:
    """The client's response does not follow the mechanism (→ 501)."""

    fr: str
    en: str


Step = Challenge | Credentials | Malformed


class SaslExchange(Protocol):
    """One authentication in progress."""

    def step(self, response: bytes | None) -> Step:
        """Next step given the client's decoded ``response`` (None: no initial response)."""
        ...


class SaslMechanism(Protocol):
    name: str

    def start(self) -> SaslExchange: ...


def _text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class _PlainExchange:
    """RFC 4616 PLAIN, decoded by the decoder every door uses (:mod:`caducee.protocols.sasl`)."""

    def step(self, response: bytes | None) -> Step:
        if response is None:
            return Challenge(b"")  # RFC 4954 §4: an empty challenge asks for the response
        try:
            plain = parse_plain(response)
        except SaslError as error:
            return Malformed(error.fr, error.en)
        return Credentials("PLAIN", plain.authcid, plain.password, plain.authzid)


class Plain:
    name = "PLAIN"

    def start(self) -> SaslExchange:
        return _PlainExchange()


class _LoginExchange:
    """The LOGIN mechanism (draft-murchison-sasl-login): user name, then password."""

    def __init__(self) -> None:
        self.username: str | None = None

    def step(self, response: bytes | None) -> Step:
        if response is None:
            return Challenge(b"Username:")
        text = _text(response)
        if text is None or not text:
            return Malformed("Reponse LOGIN mal formee", "Malformed LOGIN response")
        if self.username is None:
            self.username = text
            return Challenge(b"Password:")
        return Credentials("LOGIN", self.username, text)


class Login:
    name = "LOGIN"

    def start(self) -> SaslExchange:
        return _LoginExchange()


class _BearerExchange:
    """OAUTHBEARER (RFC 7628) or XOAUTH2: one response carrying the user and a bearer token."""

    def __init__(self, name: str) -> None:
        self.name = name

    def step(self, response: bytes | None) -> Step:
        if response is None:
            return Challenge(b"")
        parsed = (parse_oauthbearer if self.name == "OAUTHBEARER" else parse_xoauth2)(response)
        if parsed is None:
            return Malformed(f"Reponse {self.name} mal formee", f"Malformed {self.name} response")
        user, token = parsed
        return Credentials(self.name, user, token, kind="token")


class OAuthBearer:
    name = "OAUTHBEARER"

    def start(self) -> SaslExchange:
        return _BearerExchange(self.name)


class XOAuth2:
    name = "XOAUTH2"

    def start(self) -> SaslExchange:
        return _BearerExchange(self.name)


class SaslRegistry:
    """The mechanisms a handler offers, by upper-case name, in the order advertised."""

    def __init__(self, *mechanisms: SaslMechanism) -> None:
        self._mechanisms: dict[str, SaslMechanism] = {}
        for mechanism in mechanisms:
            self.register(mechanism)

    def register(self, mechanism: SaslMechanism) -> None:
        self._mechanisms[mechanism.name.upper()] = mechanism

    def get(self, name: str) -> SaslMechanism | None:
        return self._mechanisms.get(name.upper())

    def names(self) -> list[str]:
        return list(self._mechanisms)

    def __iter__(self) -> Iterator[SaslMechanism]:
        return iter(self._mechanisms.values())

    def __bool__(self) -> bool:
        return bool(self._mechanisms)


def password_mechanisms(*, bearer: bool = False) -> SaslRegistry:
    """PLAIN and LOGIN: what every mail client knows (only ever offered under TLS); with
    ``bearer`` (an OpenID issuer is configured), OAUTHBEARER and XOAUTH2 too."""
    registry = SaslRegistry(Plain(), Login())
    if bearer:
        registry.register(OAuthBearer())
        registry.register(XOAuth2())
    return registry
