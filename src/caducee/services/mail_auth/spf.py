"""SPF (RFC 7208): is the client allowed to send for the MAIL FROM (or HELO) domain?

:func:`check_spf` checks the MAIL FROM identity, or the HELO identity for a null reverse-path
(§2.4), with our own ``check_host()`` (§4) on :mod:`caducee.services.dns` (asynchronous, our
resolver; pyspf/authheaders can use neither). Mechanisms all, include, a, mx, ptr, ip4, ip6,
exists (§5), the redirect modifier (§6.1) and macros (§7) are implemented; exp= is ignored (we
never show its explanation); the 10-lookup and 2-void-lookup limits (§4.6.4) apply. The HELO
identity is not checked separately when MAIL FROM is not null (§2.3 makes it optional). DNS
failures never raise: they yield ``temperror`` (§2.6.6).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass
from typing import Final

import dns.asyncresolver
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.PTR
import dns.reversename

from caducee.services.dns import DnsAnswer, DnsTemporaryError, lookup

SPF_LOOKUP_LIMIT: Final = 10  # §4.6.4: include, a, mx, ptr, exists, redirect
SPF_VOID_LIMIT: Final = 2  # §4.6.4: lookups answering NXDOMAIN or no records
SPF_NAMES_LIMIT: Final = 10  # §4.6.4: names looked up per mx / ptr
SPF_TIMEOUT: Final = 20.0  # §4.6.4: at least 20 seconds for the whole evaluation
_QUALIFIERS: Final = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


@dataclass(frozen=True)
class SpfResult:
    """``result`` is none, neutral, pass, fail, softfail, temperror or permerror (§2.6)."""

    result: str
    domain: str  # the checked domain: of MAIL FROM, or the HELO name for a null reverse-path
    identity: str = "mailfrom"  # "mailfrom" or "helo"
    reason: str = ""


class _SpfPermError(Exception):
    pass


class _SpfTempError(Exception):
    pass


@dataclass(frozen=True)
class _Directive:
    qualifier: str
    mechanism: str
    argument: str | None = None  # domain-spec (macro-string) or network
    cidr4: int | None = None
    cidr6: int | None = None


@dataclass(frozen=True)
class _SpfRecord:
    directives: tuple[_Directive, ...]
    redirect: str | None


_MODIFIER = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*)=(.*)$")
_MECHANISM = re.compile(r"^([+\-~?]?)([A-Za-z][A-Za-z0-9_.-]*)(.*)$")
_DUAL_CIDR = re.compile(r"^(?::(?P<spec>.+?))?(?:/(?P<c4>\d{1,2}))?(?://(?P<c6>\d{1,3}))?$")
_MACRO = re.compile(
    r"%(?:\{(?P<letter>[A-Za-z])(?P<digits>\d*)(?P<reverse>[rR]?)(?P<delims>[.+,/_=-]*)\}"
    r"|(?P<escape>[%_-]))"
)
_MACRO_LETTERS: Final = frozenset("slodiphv")  # c, r, t are for exp= only (§7.2)


def _check_macro_string(text: str) -> None:
    """Syntax of a macro-string (§7.1); raises :class:`_SpfPermError`."""
    pos = 0
    while pos < len(text):
        if text[pos] == "%":
            match = _MACRO.match(text, pos)
            if match is None:
                raise _SpfPermError(f"invalid macro in {text!r}")
            letter = match.group("letter")
            if letter is not None and letter.lower() not in _MACRO_LETTERS:
                raise _SpfPermError(f"macro letter {letter!r} not allowed here")
            if match.group("digits") and int(match.group("digits")) == 0:
                raise _SpfPermError("macro transformer 0")
            pos = match.end()
        elif 0x21 <= ord(text[pos]) <= 0x7E:
            pos += 1
        else:
            raise _SpfPermError(f"invalid character in {text!r}")


def _check_domain_spec(spec: str) -> None:
    _check_macro_string(spec)
    if "%" not in spec and not _valid_domain(spec):
        raise _SpfPermError(f"invalid domain {spec!r}")


@functools.lru_cache(maxsize=1024)  # a sender's record is the same for every message
def _parse_spf(text: str) -> _SpfRecord:
    """The terms of a record (§4.6.1, §12); any syntax error is a permerror (§4.6)."""
    directives: list[_Directive] = []
    modifiers: dict[str, str] = {}
    for term in text.split(" ")[1:]:
        if not term:
            continue
        modifier = _MODIFIER.match(term)
        if modifier is not None:
            name, value = modifier.group(1).lower(), modifier.group(2)
            if name in ("redirect", "exp"):
                if name in modifiers:
                    raise _SpfPermError(f"{name}= given twice")
                if name == "redirect":
                    _check_domain_spec(value)
                modifiers[name] = value
            else:
                _check_macro_string(value)  # unknown modifiers are ignored (§6)
            continue
        mechanism = _MECHANISM.match(term)
        if mechanism is None:
            raise _SpfPermError(f"invalid term {term!r}")
        qualifier = mechanism.group(1) or "+"
        name, rest = mechanism.group(2).lower(), mechanism.group(3)
        directives.append(_parse_mechanism(qualifier, name, rest, term))
    return _SpfRecord(tuple(directives), modifiers.get("redirect"))


@functools.lru_cache(maxsize=1024)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An ip4 / ip6 mechanism's network, checked when its record was parsed."""
    return ipaddress.ip_network(text)


def _parse_mechanism(qualifier: str, name: str, rest: str, term: str) -> _Directive:
    if name == "all":
        if rest:
            raise _SpfPermError(f"invalid term {term!r}")
        return _Directive(qualifier, name)
    if name in ("include", "exists"):
        if not rest.startswith(":") or len(rest) < 2:
            raise _SpfPermError(f"{name} needs a domain: {term!r}")
        _check_domain_spec(rest[1:])
        return _Directive(qualifier, name, rest[1:])
    if name in ("a", "mx"):
        match = _DUAL_CIDR.match(rest)
        if match is None:
            raise _SpfPermError(f"invalid term {term!r}")
        spec, c4, c6 = match.group("spec"), match.group("c4"), match.group("c6")
        cidr4 = int(c4) if c4 is not None else None
        cidr6 = int(c6) if c6 is not None else None
        if (cidr4 is not None and cidr4 > 32) or (cidr6 is not None and cidr6 > 128):
            raise _SpfPermError(f"invalid prefix length in {term!r}")
        if spec is not None:
            _check_domain_spec(spec)
        return _Directive(qualifier, name, spec, cidr4, cidr6)
    if name == "ptr":
        if rest and (not rest.startswith(":") or len(rest) < 2):
            raise _SpfPermError(f"invalid term {term!r}")
        if rest:
            _check_domain_spec(rest[1:])
        return _Directive(qualifier, name, rest[1:] or None)
    if name in ("ip4", "ip6"):
        if not rest.startswith(":"):
            raise _SpfPermError(f"{name} needs an address: {term!r}")
        try:
            network = ipaddress.ip_network(rest[1:], strict=False)
        except ValueError:
            raise _SpfPermError(f"invalid network in {term!r}") from None
        if network.version != (4 if name == "ip4" else 6):
            raise _SpfPermError(f"invalid network in {term!r}")
        return _Directive(qualifier, name, str(network))
    raise _SpfPermError(f"unknown mechanism {name!r}")


def _valid_domain(name: str) -> bool:
    """A multi-label name with 1-63 octet labels, at most 253 octets (§4.3)."""
    domain = name.rstrip(".")
    labels = domain.split(".")
    return (
        0 < len(domain) <= 253
        and len(labels) >= 2
        and all(
            0 < len(label) <= 63 and label.isascii() and label.isprintable() and " " not in label
            for label in labels
        )
    )


class _SpfCheck:
    """One evaluation: the client, the sender and the lookup counters shared by every level."""

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
        sender: str,
        helo: str,
    ) -> None:
        self.resolver = resolver
        self.ip = ip
        self.sender = sender
        self.helo = helo
        self.lookups = 0
        self.voids = 0

    async def dns(self, name: str, rdtype: str) -> DnsAnswer:
        try:
            return await lookup(self.resolver, name, rdtype)
        except DnsTemporaryError as exc:
            raise _SpfTempError(str(exc)) from exc

    def count_lookup(self) -> None:
        self.lookups += 1
        if self.lookups > SPF_LOOKUP_LIMIT:
            raise _SpfPermError(f"more than {SPF_LOOKUP_LIMIT} DNS lookups")

    def count_void(self, answer: DnsAnswer) -> None:
        if not answer:
            self.voids += 1
            if self.voids > SPF_VOID_LIMIT:
                raise _SpfPermError(f"more than {SPF_VOID_LIMIT} void lookups")

    async def check_host(self, domain: str) -> str:
        """check_host() (§4): the result for ``domain``; raises on permerror/temperror."""
        if not _valid_domain(domain):
            return "none"
        answer = await self.dns(domain, "TXT")
        records = [
            text
            for text in answer.texts()
            if text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")
        ]  # §4.5
        if not records:
            return "none"
        if len(records) > 1:
            raise _SpfPermError(f"several SPF records at {domain}")
        record = _parse_spf(records[0])
        for directive in record.directives:  # §4.6.2: first match wins
            if await self.matches(directive, domain):
                return _QUALIFIERS[directive.qualifier]
        if record.redirect is not None:  # §6.1
            self.count_lookup()
            target = self.expand(record.redirect, domain)
            result = await self.check_host(target)
            if result == "none":
                raise _SpfPermError(f"redirect to {target} without SPF record")
            return result
        return "neutral"  # §4.7

    async def matches(self, directive: _Directive, domain: str) -> bool:
        mechanism = directive.mechanism
        if mechanism == "all":
            return True
        if mechanism in ("ip4", "ip6"):  # §5.6
            assert directive.argument is not None
            network = _network(directive.argument)
            return network.version == self.ip.version and self.ip in network
        self.count_lookup()
        target = self.expand(directive.argument, domain) if directive.argument else domain
        if mechanism == "include":  # §5.2
            result = await self.check_host(target)
            if result == "none":
                raise _SpfPermError(f"include:{target} has no SPF record")
            return result == "pass"
        if mechanism == "exists":  # §5.7: always an A query
            answer = await self.dns(target, "A")
            self.count_void(answer)
            return bool(answer)
        if mechanism == "a":  # §5.3
            answer = await self.dns(target, self.address_type)
            self.count_void(answer)
            return self.in_any(answer, directive)
        if mechanism == "mx":  # §5.4
            answer = await self.dns(target, "MX")
            self.count_void(answer)
            exchanges = [
                r.exchange.to_text(omit_final_dot=True)
                for r in answer.records
                if isinstance(r, dns.rdtypes.ANY.MX.MX)
            ]
            if len(exchanges) > SPF_NAMES_LIMIT:
                raise _SpfPermError(f"{target} has more than {SPF_NAMES_LIMIT} MX")
            for exchange in exchanges:
                if exchange and self.in_any(await self.dns(exchange, self.address_type), directive):
                    return True
            return False
        if mechanism == "ptr":  # §5.5
            return await self.ptr_matches(target)
        raise _SpfPermError(f"unknown mechanism {mechanism!r}")  # pragma: no cover

    @property
    def address_type(self) -> str:
        return "A" if self.ip.version == 4 else "AAAA"

    def in_any(self, answer: DnsAnswer, directive: _Directive) -> bool:
        prefix = directive.cidr4 if self.ip.version == 4 else directive.cidr6
        for record in answer.records:
            address = ipaddress.ip_address(record.to_text())
            if address.version != self.ip.version:
                continue
            bits = prefix if prefix is not None else address.max_prefixlen
            if self.ip in ipaddress.ip_network(f"{address}/{bits}", strict=False):
                return True
        return False

    async def ptr_matches(self, target: str) -> bool:
        """Validated reverse names ending in ``target`` (§5.5); DNS errors do not match."""
        try:
            answer = await self.dns(dns.reversename.from_address(str(self.ip)).to_text(), "PTR")
        except _SpfTempError:
            return False
        names = [
            r.target.to_text(omit_final_dot=True).lower()
            for r in answer.records
            if isinstance(r, dns.rdtypes.ANY.PTR.PTR)
        ][:SPF_NAMES_LIMIT]
        wanted = target.lower().rstrip(".")
        for name in names:
            if name != wanted and not name.endswith("." + wanted):
                continue
            try:
                addresses = await self.dns(name, self.address_type)
            except _SpfTempError:
                continue
            if any(ipaddress.ip_address(r.to_text()) == self.ip for r in addresses.records):
                return True
        return False

    def expand(self, spec: str, domain: str) -> str:
        """A domain-spec's target: macros expanded, trimmed to 253 octets (§7.3), checked."""
        result = self.expand_macros(spec, domain).rstrip(".")
        while len(result) > 253 and "." in result:
            result = result.split(".", 1)[1]
        if not _valid_domain(result):
            raise _SpfPermError(f"invalid domain after expansion: {result!r}")
        return result

    def expand_macros(self, spec: str, domain: str) -> str:
        """Macro expansion of a macro-string (§7.3)."""
        out: list[str] = []
        pos = 0
        while pos < len(spec):
            if spec[pos] != "%":
                out.append(spec[pos])
                pos += 1
                continue
            match = _MACRO.match(spec, pos)
            if match is None:  # checked at parse time
                raise _SpfPermError(f"invalid macro in {spec!r}")
            pos = match.end()
            escape = match.group("escape")
            if escape is not None:
                out.append({"%": "%", "_": " ", "-": "%20"}[escape])
                continue
            letter = match.group("letter")
            value = self.macro_value(letter.lower(), domain)
            parts = re.split("[" + re.escape(match.group("delims") or ".") + "]", value)
            if match.group("reverse"):
                parts.reverse()
            if match.group("digits"):
                parts = parts[-int(match.group("digits")) :]
            expanded = ".".join(parts)
            if letter.isupper():
                expanded = urllib.parse.quote(expanded, safe="-._~")
            out.append(expanded)
        return "".join(out)

    def macro_value(self, letter: str, domain: str) -> str:
        local, _, sender_domain = self.sender.rpartition("@")
        if letter == "s":
            return self.sender
        if letter == "l":
            return local
        if letter == "o":
            return sender_domain
        if letter == "d":
            return domain
        if letter == "i":
            if self.ip.version == 4:
                return str(self.ip)
            return ".".join(self.ip.exploded.replace(":", ""))
        if letter == "v":
            return "in-addr" if self.ip.version == 4 else "ip6"
        if letter == "h":
            return self.helo or "unknown"
        return "unknown"  # p: we do not look up a validated name (§7.3 discourages it)


def _client_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().strip("[]").removeprefix("IPv6:"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # an IPv4 client on a dual-stack socket
    return ip


async def check_spf(
    resolver: dns.asyncresolver.Resolver, client_ip: str, helo: str, mail_from: str
) -> SpfResult:
    """SPF for the MAIL FROM identity, or the HELO identity when the reverse-path is null."""
    helo_name = helo.strip().lower().rstrip(".")
    if mail_from:
        local, at, domain = mail_from.strip().rpartition("@")
        if not at:
            domain = local  # no "@": a bare domain
        sender = f"{local or 'postmaster'}@{domain}"  # §4.3: no local-part → postmaster
        identity = "mailfrom"
    else:
        domain, sender, identity = helo_name, f"postmaster@{helo_name}", "helo"  # §2.4
    domain = domain.lower().rstrip(".")
    if domain.startswith("[") or _client_ip(domain) is not None:
        return SpfResult("none", domain, identity, "address literal")  # §4.3: not a domain
    ip = _client_ip(client_ip)
    if ip is None:
        return SpfResult("none", domain, identity, "no client address")
    check = _SpfCheck(resolver, ip, sender.lower(), helo_name)
    try:
        async with asyncio.timeout(SPF_TIMEOUT):
            result = await check.check_host(domain)
    except _SpfPermError as exc:
        return SpfResult("permerror", domain, identity, str(exc))
    except (_SpfTempError, TimeoutError) as exc:
        return SpfResult("temperror", domain, identity, str(exc) or "DNS timeout")
    return SpfResult(result, domain, identity)
