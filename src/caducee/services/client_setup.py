"""What a mail client must know to connect: the host, and each mail door's port and TLS mode.

One rule for every document that configures a client (Thunderbird's autoconfig, Outlook's
autodiscover, Apple's ``.mobileconfig``, the SRV records of ``caducee dns``): the doors
announced are the listeners in force (``[listeners]`` of ``caducee.toml``), in the order a
client should prefer them — implicit TLS before STARTTLS (RFC 8314 §3.3), IMAP before POP3 —
on the node's ``hostname``. A listener configured on port 0 (tests) is announced with the port
it is bound to (``run/listeners.json``); the SMTP relay door (port 25) is never announced.

Nothing here depends on the address asked about: any address of one of our domains gets the
same answer (so an answer never tells whether a mailbox exists), any other domain none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from caducee.app import App
from caducee.config import PRODUCTION_LISTENERS, Settings
from caducee.domain.addresses import normalize_domain
from caducee.errors import CaduceeError
from caducee.services.local_domains import our_domains


class Protocol(StrEnum):
    IMAP = "imap"
    POP3 = "pop3"
    SMTP = "smtp"


class Security(StrEnum):
    """How the connection is protected: TLS from the first byte, or STARTTLS before login."""

    TLS = "SSL"  # RFC 8314 §3: implicit TLS
    STARTTLS = "STARTTLS"  # RFC 3207 (SMTP), RFC 3501 §6.2.1 (IMAP), RFC 2595 §4 (POP3)


#: (listener, protocol, security), in the order a client should prefer them (RFC 8314 §3.3).
ANNOUNCED: tuple[tuple[str, Protocol, Security], ...] = (
    ("imaps", Protocol.IMAP, Security.TLS),
    ("imap", Protocol.IMAP, Security.STARTTLS),
    ("pop3s", Protocol.POP3, Security.TLS),
    ("pop3", Protocol.POP3, Security.STARTTLS),
    ("submissions", Protocol.SMTP, Security.TLS),
    ("submission", Protocol.SMTP, Security.STARTTLS),
)

_LOOPBACK = ("127.", "::1", "[::1]", "localhost")


@dataclass(frozen=True)
class ClientServer:
    """One door a client may use: the login is always the full e-mail address."""

    listener: str
    protocol: Protocol
    security: Security
    port: int
    loopback: bool


@dataclass(frozen=True)
class ClientSetup:
    """What a client configuring ``domain`` is told."""

    domain: str
    hostname: str
    servers: tuple[ClientServer, ...]

    def of(self, protocol: Protocol) -> tuple[ClientServer, ...]:
        return tuple(s for s in self.servers if s.protocol is protocol)


def _bound_ports(settings: Settings) -> dict[str, int]:
    """Ports the serving node is bound to, by listener (empty when it is not serving)."""
    try:
        bound = json.loads(settings.listeners_path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    ports: dict[str, int] = {}
    for name, address in bound.items() if isinstance(bound, dict) else ():
        _, _, port = str(address).rpartition(":")
        if port.isdigit():
            ports[str(name)] = int(port)
    return ports


def listener_port(settings: Settings, name: str) -> tuple[int, bool] | None:
    """The port clients reach listener ``name`` on and whether it listens on loopback only;
    ``None`` if it is not configured."""
    listeners = settings.listeners or PRODUCTION_LISTENERS
    address = listeners.get(name)
    if not address:
        return None
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return None
    number = int(port)
    if number == 0:
        number = _bound_ports(settings).get(name, 0)
        if number == 0:
            return None
    return number, host.strip("[]").startswith(_LOOPBACK)


def announced_servers(settings: Settings) -> tuple[ClientServer, ...]:
    """The client doors in force, in order of preference."""
    servers: list[ClientServer] = []
    for listener, protocol, security in ANNOUNCED:
        port = listener_port(settings, listener)
        if port is not None:
            servers.append(ClientServer(listener, protocol, security, port[0], port[1]))
    return tuple(servers)


def domain_of(address_or_domain: str) -> str | None:
    """The domain of an e-mail address (or a bare domain), normalised; ``None`` if invalid."""
    text = address_or_domain.strip()
    domain = text.rpartition("@")[2] if "@" in text else text
    try:
        return normalize_domain(domain)
    except CaduceeError:
        return None


async def client_setup(app: App, address_or_domain: str) -> ClientSetup | None:
    """The setup for an address or domain of ours (the same for every address of a domain);
    ``None`` for any other domain or an invalid one."""
    domain = domain_of(address_or_domain)
    if domain is None or domain not in await our_domains(app):
        return None
    return ClientSetup(domain, app.settings.hostname, announced_servers(app.settings))
