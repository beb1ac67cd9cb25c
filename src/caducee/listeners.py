"""What ``caducee serve`` needs from a door (HTTPS, SMTP, IMAP, ...), and the socket plumbing.

A door is a :class:`Listener`: ``start()`` binds and begins accepting, returning the address it
actually listens on (so port 0 works); ``wait_closed()`` returns when it has stopped, on request
or because it failed; ``stop(grace)`` stops accepting, lets in-flight work finish for at most
``grace`` seconds, then drops what is left. Doors are registered by name in
:data:`caducee.server.LISTENER_FACTORIES`.

With several worker processes (``[server] workers``), the supervisor binds every listening
socket once and each worker inherits them (:func:`adopt_inherited`): a door's ``start()`` then
serves the inherited socket instead of binding its own, and the kernel hands each incoming
connection to one of the workers accepting on it.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass
from typing import Protocol

from caducee.errors import ConfigurationError

#: Listening sockets this process inherited from its supervisor, by listener name (a process
#: property, like its file descriptors: set once by a worker before its doors start).
_inherited: dict[str, socket.socket] = {}


@dataclass(frozen=True)
class ListenAddress:
    """A parsed ``host:port`` (``[v6]:port`` for IPv6)."""

    host: str
    port: int

    def __str__(self) -> str:
        return format_address(self.host, self.port)


class Listener(Protocol):
    """One door of the server."""

    name: str

    async def start(self) -> ListenAddress:
        """Bind and start accepting; return the address actually bound."""
        ...

    async def wait_closed(self) -> None:
        """Return once the listener has stopped (after :meth:`stop`, or on its own on failure)."""
        ...

    async def stop(self, grace: float) -> None:
        """Stop accepting; let in-flight work finish for up to ``grace`` seconds; close."""
        ...


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bad_address(name: str, text: str) -> ConfigurationError:
    return ConfigurationError(
        f"Adresse d'écoute {text!r} invalide pour « {name} » : attendu hôte:port, "
        "par exemple 0.0.0.0:443, 127.0.0.1:8443 ou [::]:443 (section [listeners] de "
        "caducee.toml ou variable CADUCEE_LISTEN_*).",
        f"Listen address {text!r} is invalid for '{name}': expected host:port, for example "
        "0.0.0.0:443, 127.0.0.1:8443 or [::]:443 ([listeners] in caducee.toml or a "
        "CADUCEE_LISTEN_* variable).",
    )


def parse_address(name: str, text: str) -> ListenAddress:
    """Parse the ``host:port`` configured for listener ``name``; ConfigurationError if bad."""
    value = text.strip()
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise _bad_address(name, text)
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad_address(name, text) from None
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host or ":" in host or any(c.isspace() for c in host):
            raise _bad_address(name, text)
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        raise _bad_address(name, text)
    return ListenAddress(host, int(port_text))


def adopt_inherited(fds: dict[str, int]) -> None:
    """Serve these already-listening sockets (file descriptors inherited from the supervisor,
    by listener name) instead of binding new ones."""
    for name, fd in fds.items():
        _inherited[name] = socket.socket(fileno=fd)


def parse_fds(text: str) -> dict[str, int]:
    """``name=fd,name=fd`` (the worker's ``--listen-fds``) as a mapping."""
    fds: dict[str, int] = {}
    for item in filter(None, text.split(",")):
        name, _, fd = item.partition("=")
        fds[name] = int(fd)
    return fds


def format_fds(fds: dict[str, int]) -> str:
    return ",".join(f"{name}={fd}" for name, fd in sorted(fds.items()))


def bind_tcp(name: str, address: ListenAddress, *, backlog: int = 128) -> socket.socket:
    """A listening TCP socket on ``address``; a clear ConfigurationError if it cannot be had.

    In a worker process, the socket inherited for ``name`` (:func:`adopt_inherited`)."""
    inherited = _inherited.pop(name, None)
    if inherited is not None:
        return inherited
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigurationError(
            f"Adresse d'écoute de « {name} » ({address}) : nom d'hôte inconnu ({exc}).",
            f"Listen address of '{name}' ({address}): unknown host name ({exc}).",
        ) from None
    family, _type, _proto, _canon, sockaddr = infos[0]
    # "[::]:port" means every address, IPv4 included, as "0.0.0.0:port" means every IPv4 one.
    dualstack = family == socket.AF_INET6 and address.host == "::"
    try:
        return socket.create_server(
            (str(sockaddr[0]), address.port),
            family=family,
            backlog=backlog,
            dualstack_ipv6=dualstack and socket.has_dualstack_ipv6(),
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"Le port {address.port} ({name}, {address}) est déjà utilisé par un autre "
                "programme. Arrêtez-le ou choisissez un autre port dans la section [listeners] "
                "de caducee.toml.",
                f"Port {address.port} ({name}, {address}) is already in use by another "
                "program. Stop it or choose another port in [listeners] of caducee.toml.",
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ConfigurationError(
                f"Permission refusée pour écouter sur {address} ({name}). Les ports inférieurs "
                "à 1024 demandent la capacité CAP_NET_BIND_SERVICE (voir docs/operations.md) ; "
                "sinon choisissez un port non privilégié.",
                f"Permission denied to listen on {address} ({name}). Ports below 1024 need "
                "the CAP_NET_BIND_SERVICE capability (see docs/operations.md); otherwise "
                "choose an unprivileged port.",
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ConfigurationError(
                f"L'adresse {address.host} ({name}) n'appartient pas à cette machine.",
                f"Address {address.host} ({name}) does not belong to this machine.",
            ) from None
        raise ConfigurationError(
            f"Impossible d'écouter sur {address} ({name}) : {exc.strerror or exc}.",
            f"Cannot listen on {address} ({name}): {exc.strerror or exc}.",
        ) from None


def bound_address(sock: socket.socket) -> ListenAddress:
    host, port = sock.getsockname()[:2]
    return ListenAddress(str(host), int(port))
