"""DNS for every part of Caducée (MX, SPF, DKIM, DMARC, ...): one resolver factory.

``Settings.dns_resolver`` is ``""`` (the system's resolver, ``/etc/resolv.conf``) or
``"host:port"`` (``"[::1]:53"`` for IPv6; the port defaults to 53): tests point it at their
local DNS server (``tests/dnsserver.py``), production may point it at a validating resolver.

Answers are cached per resolver in one LRU cache that honours TTLs (dnspython's), so SPF and
DMARC lookups for a busy sender are not repeated for every message.

:func:`lookup` classifies answers the way mail authentication needs them (RFC 7208 §5 and
RFC 7489 §6.6.3): records, empty (NXDOMAIN or NODATA, both "void"), or a temporary failure
(:class:`DnsTemporaryError`: timeout, SERVFAIL, no reachable server).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdata
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.resolver

from caducee.config import Settings
from caducee.errors import ConfigurationError

log = logging.getLogger(__name__)

#: Seconds to wait for one server's answer, then for the whole query (all tries).
DEFAULT_TIMEOUT = 3.0
DEFAULT_LIFETIME = 8.0
CACHE_SIZE = 10_000


class _AnswerCache(dns.resolver.LRUCache):
    """dnspython's cache, plus our classified answers in front of it (dnspython answers even a
    cached name error by building and raising an exception): (name, type) → (expiry on the
    monotonic clock, answer). ``flush()`` forgets both."""

    def __init__(self, max_size: int) -> None:
        super().__init__(max_size)
        self.answers: dict[tuple[str, str], tuple[float, DnsAnswer]] = {}

    def flush(self, key: Any = None) -> None:
        super().flush(key)
        if key is None:
            self.answers.clear()


_caches: dict[str, _AnswerCache] = {}
_caches_lock = threading.Lock()
_resolvers: dict[str, dns.asyncresolver.Resolver] = {}
_warned_no_config = False


def parse_resolver_spec(spec: str) -> tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"``, ``"host"`` or a bare IPv6 address → (IP, port)."""
    text = spec.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise _bad_spec(spec)
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    try:
        ip = ipaddress.ip_address(host)
        port = int(port_text) if port_text else 53
    except ValueError:
        raise _bad_spec(spec) from None
    if not 0 < port < 65536:
        raise _bad_spec(spec)
    return str(ip), port


def _bad_spec(spec: str) -> ConfigurationError:
    return ConfigurationError(
        f"Résolveur DNS invalide « {spec} » : adresse IP et port attendus "
        "(ex. 127.0.0.1:53 ou [::1]:53), ou vide pour le résolveur du système.",
        f"Invalid DNS resolver '{spec}': an IP address and port are expected "
        "(e.g. 127.0.0.1:53 or [::1]:53), or empty for the system resolver.",
    )


def _cache_for(spec: str) -> _AnswerCache:
    with _caches_lock:
        cache = _caches.get(spec)
        if cache is None:
            cache = _caches[spec] = _AnswerCache(CACHE_SIZE)
        return cache


def make_resolver(settings: Settings) -> dns.asyncresolver.Resolver:
    """The node's asynchronous resolver for ``settings.dns_resolver`` (made once per setting:
    reading the system configuration costs more than a cached answer).

    Raises :class:`ConfigurationError` when the setting is malformed. Without a system
    configuration (no ``/etc/resolv.conf``), falls back to 127.0.0.1:53 and logs it once.
    """
    spec = settings.dns_resolver.strip()
    with _caches_lock:
        resolver = _resolvers.get(spec)
    if resolver is None:
        resolver = _new_resolver(spec)
        with _caches_lock:
            resolver = _resolvers.setdefault(spec, resolver)
    return resolver


def _new_resolver(spec: str) -> dns.asyncresolver.Resolver:
    global _warned_no_config
    if spec:
        host, port = parse_resolver_spec(spec)
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    else:
        try:
            resolver = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            if not _warned_no_config:
                log.warning("no system DNS configuration; using 127.0.0.1:53")
                _warned_no_config = True
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = ["127.0.0.1"]
    resolver.timeout = DEFAULT_TIMEOUT
    resolver.lifetime = DEFAULT_LIFETIME
    resolver.cache = _cache_for(spec)
    return resolver


class DnsTemporaryError(Exception):
    """The DNS could not answer now (timeout, SERVFAIL, REFUSED, no reachable server)."""


@dataclass(frozen=True)
class DnsAnswer:
    """The records found for one name and type; empty for NXDOMAIN (``nxdomain``) or NODATA."""

    name: str
    rdtype: str
    records: tuple[dns.rdata.Rdata, ...] = ()
    nxdomain: bool = False

    def __bool__(self) -> bool:
        return bool(self.records)

    def texts(self) -> list[str]:
        """TXT records, each one's character-strings joined without spaces (RFC 7208 §3.3)."""
        return [
            b"".join(r.strings).decode("utf-8", "replace")
            for r in self.records
            if isinstance(r, dns.rdtypes.ANY.TXT.TXT)
        ]


def _negative_ttl(exc: dns.resolver.NXDOMAIN) -> float:
    """RFC 2308 §5: a name error is kept min(SOA TTL, SOA MINIMUM) seconds; 0 without SOA."""
    ttls = [
        min(rrset.ttl, rrset[0].minimum)
        for response in exc.responses().values()  # type: ignore[no-untyped-call]
        for rrset in response.authority
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset)
    ]
    return float(min(ttls)) if ttls else 0.0


def _remember(
    cache: _AnswerCache | None, key: tuple[str, str], ttl: float, answer: DnsAnswer
) -> DnsAnswer:
    if cache is not None and ttl > 0:
        if len(cache.answers) >= CACHE_SIZE:
            cache.answers.clear()
        cache.answers[key] = (time.monotonic() + ttl, answer)
    return answer


async def lookup(resolver: dns.asyncresolver.Resolver, name: str, rdtype: str) -> DnsAnswer:
    """Records of ``rdtype`` at the absolute ``name`` (CNAMEs followed).

    A name that is not valid DNS syntax (empty label, label over 63 octets, name over 255)
    has no records. Raises :class:`DnsTemporaryError` when the DNS cannot answer now. Answers,
    negative ones included, are kept as long as their TTL allows (temporary failures never).
    """
    cache = resolver.cache if isinstance(resolver.cache, _AnswerCache) else None
    key = (name.lower().rstrip("."), rdtype)
    kept = cache.answers.get(key) if cache is not None else None
    if kept is not None and kept[0] > time.monotonic():
        return kept[1]
    try:
        qname = dns.name.from_text(name.rstrip(".") + ".")
    except dns.exception.DNSException:
        return DnsAnswer(name, rdtype)
    try:
        answer = await resolver.resolve(qname, rdtype, raise_on_no_answer=False, search=False)
    except dns.resolver.NXDOMAIN as exc:
        return _remember(cache, key, _negative_ttl(exc), DnsAnswer(name, rdtype, nxdomain=True))
    except dns.resolver.NoAnswer:
        return DnsAnswer(name, rdtype)
    except dns.exception.DNSException as exc:  # timeout, SERVFAIL/REFUSED, malformed answer
        raise DnsTemporaryError(f"{name}/{rdtype}: {type(exc).__name__}") from exc
    except OSError as exc:  # e.g. no route to the resolver
        raise DnsTemporaryError(f"{name}/{rdtype}: {exc.strerror or exc}") from exc
    records = tuple(answer.rrset) if answer.rrset is not None else ()
    return _remember(cache, key, answer.expiration - time.time(), DnsAnswer(name, rdtype, records))
