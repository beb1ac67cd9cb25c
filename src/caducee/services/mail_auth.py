"""Mail authentication: SPF, DKIM and DMARC for mail arriving on the MX, DKIM for mail leaving.

Inbound, :func:`evaluate_inbound` checks

* SPF (RFC 7208) of the MAIL FROM identity, or of the HELO identity for a null reverse-path
  (§2.4), with our own ``check_host()`` on :mod:`caducee.services.dns` (asynchronous, our
  resolver; pyspf/authheaders can use neither). Mechanisms all, include, a, mx, ptr, ip4, ip6,
  exists, the redirect modifier and macros (§7) are implemented; exp= is ignored (we never
  show its explanation); the 10-lookup and 2-void-lookup limits (§4.6.4) apply. The HELO
  identity is not checked separately when MAIL FROM is not null (§2.3 makes it optional).
* DKIM (RFC 6376) with dkimpy for canonicalisation and cryptography: the key record is fetched
  asynchronously by us, then the signature is verified in a worker thread. rsa-sha1 signatures
  are refused (RFC 8301 §3.1) and keys shorter than 1024 bits fail.
* DMARC (RFC 7489): policy discovery at ``_dmarc.<From domain>`` then at the organisational
  domain (§6.6.3), found with the Public Suffix List that authheaders ships (publicsuffix2's
  own copy otherwise; both are offline files), relaxed/strict alignment (§3.1), p/sp and
  pct (§6.6.4).

DNS failures never raise: they yield ``temperror`` results. The verdict renders the
``Authentication-Results`` header (RFC 8601) and tells whether a message is a spoof of one of
our own domains (:meth:`AuthVerdict.rejects_local_spoof`).

Outbound, :func:`dkim_sign` signs with the domain's key (relaxed/relaxed, rsa-sha256).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.resources
import ipaddress
import logging
import random
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any, Final

import dkim
import dns.asyncresolver
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.PTR
import dns.reversename
from publicsuffix2 import PublicSuffixList

from caducee.config import Settings
from caducee.errors import CaduceeError, InvalidInput, PolicyRejected
from caducee.i18n import language
from caducee.services.dkim_keys import ensure_dkim_key
from caducee.services.dns import DnsAnswer, DnsTemporaryError, lookup, make_resolver

log = logging.getLogger(__name__)
_dkim_log = logging.getLogger(__name__ + ".dkimpy")

# ===== organisational domains (RFC 7489 §3.2) ==================================================


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    """The Public Suffix List: authheaders' copy (newer), else publicsuffix2's. Offline."""
    try:
        ref = importlib.resources.files("authheaders") / "public_suffix_list.txt"
        with importlib.resources.as_file(ref) as path:
            return PublicSuffixList(str(path))
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return PublicSuffixList()


@functools.lru_cache(maxsize=4096)  # asked for every message received
def organizational_domain(domain: str) -> str:
    """The registered domain: one label more than its public suffix (RFC 7489 §3.2).

    Unknown top-level domains count as public suffixes (the list's default ``*`` rule).
    """
    name = domain.strip().lower().rstrip(".")
    labels = name.split(".")
    suffix = _public_suffixes().get_tld(name) or labels[-1]
    size = len(suffix.split(".")) + 1
    return name if len(labels) <= size else ".".join(labels[-size:])


def aligned(identifier: str, from_domain: str, mode: str) -> bool:
    """Identifier alignment (RFC 7489 §3.1): strict = same name, relaxed = same org domain."""
    a, b = identifier.strip().lower().rstrip("."), from_domain.strip().lower().rstrip(".")
    if not a or not b:
        return False
    if mode == "s":
        return a == b
    return organizational_domain(a) == organizational_domain(b)


# ===== SPF (RFC 7208) ===========================================================================

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
            network = ipaddress.ip_network(directive.argument)
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


# ===== DKIM verification (RFC 6376) ===========================================================

MAX_DKIM_SIGNATURES: Final = 5  # verified per message; more are ignored


@dataclass(frozen=True)
class DkimResult:
    """``result`` is pass, fail, neutral, temperror or permerror (RFC 8601 §2.7.1)."""

    result: str
    domain: str = ""  # d=
    selector: str = ""  # s=
    reason: str = ""


def _short(exc: Exception) -> str:
    text = str(exc).split(" (", 1)[0]
    return re.sub(r"[^\x20-\x7e]", "", text)[:80]


def _field(sig: dict[bytes, bytes], tag: bytes) -> str:
    return sig.get(tag, b"").decode("ascii", "replace").strip()


async def _verify_signature(
    resolver: dns.asyncresolver.Resolver, verifier: dkim.DKIM, index: int
) -> DkimResult:
    try:
        prepared = verifier.verify_headerprep(index)
    except dkim.DKIMException as exc:
        fields: dict[bytes, bytes] = verifier.signature_fields or {}
        return DkimResult(
            "permerror", _field(fields, b"d").lower(), _field(fields, b"s"), _short(exc)
        )
    if not prepared:
        return DkimResult("permerror", reason="signature not found")
    sig, include_headers, sig_headers = prepared
    domain, selector = _field(sig, b"d").lower(), _field(sig, b"s")
    if sig.get(b"a", b"").lower() == b"rsa-sha1":
        return DkimResult("permerror", domain, selector, "rsa-sha1 refused (RFC 8301)")
    name = f"{selector}._domainkey.{domain}"
    try:
        answer = await lookup(resolver, name, "TXT")
    except DnsTemporaryError:
        return DkimResult("temperror", domain, selector, "key lookup failed")
    texts = answer.texts()
    if not texts:
        return DkimResult("permerror", domain, selector, "no key")
    key_record = texts[0].encode("utf-8")
    try:
        dkim.evaluate_pk(name.encode(), key_record)
    except dkim.DKIMException as exc:
        return DkimResult("permerror", domain, selector, "invalid key: " + _short(exc))

    def key_lookup(_name: bytes, timeout: float = 5) -> bytes:
        return key_record

    def verify() -> bool:
        return bool(verifier.verify_sig(sig, include_headers, sig_headers[index], key_lookup))

    try:
        valid = await asyncio.to_thread(verify)
    except dkim.DKIMException as exc:  # body hash mismatch, key too small, ...
        return DkimResult("fail", domain, selector, _short(exc))
    if not valid:
        return DkimResult("fail", domain, selector, "signature did not verify")
    return DkimResult("pass", domain, selector)


def _parse_for_dkim(raw: bytes) -> tuple[dkim.DKIM, int]:
    verifier = dkim.DKIM(raw, logger=_dkim_log)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    return verifier, count


async def check_dkim(resolver: dns.asyncresolver.Resolver, raw: bytes) -> tuple[DkimResult, ...]:
    """One result per DKIM-Signature (the first five); empty when the message has none."""
    if b"dkim-signature" not in _header_block(raw).lower():
        return ()
    try:
        verifier, count = await asyncio.to_thread(_parse_for_dkim, raw)
    except dkim.DKIMException:
        if b"dkim-signature:" in _header_block(raw).lower():
            return (DkimResult("permerror", reason="unparsable header"),)
        return ()
    return tuple(
        [
            await _verify_signature(resolver, verifier, index)
            for index in range(min(count, MAX_DKIM_SIGNATURES))
        ]
    )


# ===== DMARC (RFC 7489) ========================================================================

_DMARC_VERSION = re.compile(r"^\s*v\s*=\s*DMARC1\s*(;|$)")
_POLICIES: Final = ("none", "quarantine", "reject")


@dataclass(frozen=True)
class DmarcResult:
    """``result`` is none, pass, fail, temperror or permerror.

    ``policy`` is what the domain owner asks for failing mail (p=, or sp= for a subdomain;
    "" without a record); ``disposition`` is what applies to this message: ``policy`` when it
    failed (pct= may lower it, §6.6.4), else "none".
    """

    result: str
    from_domain: str = ""
    policy: str = ""
    disposition: str = "none"
    record_domain: str = ""  # where the record was found
    reason: str = ""


def _header_block(raw: bytes) -> bytes:
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(separator)
        if end >= 0:
            return raw[: end + len(separator)]
    return raw


def from_header_domains(raw: bytes) -> tuple[tuple[str, ...], bool]:
    """Domains of every address in every From field, and whether DMARC can use them:
    exactly one From field whose addresses share one domain (RFC 7489 §6.6.1)."""
    values: list[str] = []
    current: list[str] = []
    for line in _header_block(raw).decode("utf-8", "replace").splitlines():
        if not line.strip():
            break
        if line[0] in " \t":
            if current:
                current.append(line.strip())
            continue
        if current:
            values.append(" ".join(current))
            current = []
        field_name, colon, value = line.partition(":")
        if colon and field_name.strip().lower() == "from":
            current = [value.strip()]
    if current:
        values.append(" ".join(current))
    domains: list[str] = []
    complete = bool(values)
    for _, address in getaddresses(values):
        domain = address.rpartition("@")[2].strip().lower().rstrip(".")
        if "@" not in address or not domain:
            complete = False
            continue
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            complete = False
            continue
        if domain not in domains:
            domains.append(domain)
    usable = complete and len(values) == 1 and len(domains) == 1
    return tuple(domains), usable


def _dmarc_tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, eq, value = part.partition("=")
        if eq and key.strip():
            tags.setdefault(key.strip().lower(), value.strip())
    return tags


async def _dmarc_record(resolver: dns.asyncresolver.Resolver, domain: str) -> dict[str, str] | None:
    """The one DMARC record at ``_dmarc.<domain>`` (§6.6.3: several = none)."""
    answer = await lookup(resolver, f"_dmarc.{domain}", "TXT")
    records = [text for text in answer.texts() if _DMARC_VERSION.match(text)]
    if len(records) != 1:
        return None
    tags = _dmarc_tags(records[0])
    policy = tags.get("p", "").lower()
    sub_policy = tags.get("sp", policy).lower()
    if policy not in _POLICIES or sub_policy not in _POLICIES:
        if "mailto:" not in tags.get("rua", "").lower():
            return None  # §6.6.3 step 6: no valid policy and no report address
        tags["p"] = "none"
        tags["sp"] = "none"
    return tags


def _lower(policy: str) -> str:
    return {"reject": "quarantine", "quarantine": "none"}.get(policy, "none")


async def check_dmarc(
    resolver: dns.asyncresolver.Resolver,
    from_domains: tuple[str, ...],
    usable: bool,
    spf: SpfResult,
    dkim_results: tuple[DkimResult, ...],
    *,
    sample: Callable[[], int] = lambda: random.randrange(100),  # noqa: S311 - not security
) -> DmarcResult:
    if not usable:
        return DmarcResult(
            "permerror",
            from_domains[0] if len(from_domains) == 1 else "",
            reason="From header missing, repeated, or with several domains",
        )
    from_domain = from_domains[0]
    org_domain = organizational_domain(from_domain)
    try:
        record, where = await _dmarc_record(resolver, from_domain), from_domain
        if record is None and org_domain != from_domain:
            record, where = await _dmarc_record(resolver, org_domain), org_domain
    except DnsTemporaryError:
        return DmarcResult("temperror", from_domain, reason="policy lookup failed")
    if record is None:
        return DmarcResult("none", from_domain)
    policy = record["p"].lower()
    if where != from_domain:
        policy = record.get("sp", policy).lower()  # §6.3 sp: subdomains of the org domain
    adkim = "s" if record.get("adkim", "r").lower() == "s" else "r"
    aspf = "s" if record.get("aspf", "r").lower() == "s" else "r"
    spf_ok = spf.result == "pass" and aligned(spf.domain, from_domain, aspf)
    dkim_ok = any(
        r.result == "pass" and aligned(r.domain, from_domain, adkim) for r in dkim_results
    )
    if spf_ok or dkim_ok:
        return DmarcResult("pass", from_domain, policy, "none", where)
    try:
        pct = min(100, max(0, int(record.get("pct", "100"))))
    except ValueError:
        pct = 100
    disposition = policy if pct >= 100 or sample() < pct else _lower(policy)
    return DmarcResult(
        "fail", from_domain, policy, disposition, where, reason="no aligned SPF or DKIM pass"
    )


# ===== the verdict and its header (RFC 8601) ==================================================

_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`{|}~]+$")  # RFC 2045 token


def _value(text: str) -> str:
    """A pvalue/reason value: a token, or a quoted-string (RFC 8601 §2.2)."""
    if _TOKEN.match(text):
        return text
    clean = re.sub(r"[^\x20-\x7e]", "", text).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{clean}"'


def _method(method: str, result: str, reason: str, props: list[tuple[str, str]]) -> str:
    parts = [f"{method}={result}"]
    if reason:
        parts.append(f"reason={_value(reason)}")
    parts += [f"{name}={_value(value)}" for name, value in props if value]
    return " ".join(parts)


@dataclass(frozen=True)
class AuthVerdict:
    """What SPF, DKIM and DMARC say about one inbound message."""

    authserv_id: str
    spf: SpfResult
    dkim: tuple[DkimResult, ...]
    dmarc: DmarcResult
    from_domains: tuple[str, ...] = ()
    mail_from_domain: str = ""  # "" for the null reverse-path

    @property
    def dmarc_policy(self) -> str:
        """What DMARC asks us to do with this message: none, quarantine or reject."""
        return self.dmarc.disposition if self.dmarc.result == "fail" else "none"

    @property
    def temporary_failure(self) -> bool:
        """True when a DNS failure left a check undecided (a 4xx answer may be fairer)."""
        return "temperror" in (
            self.spf.result,
            self.dmarc.result,
            *(r.result for r in self.dkim),
        )

    def results(self) -> list[str]:
        """The resinfo items of the header, in order: spf, dkim (one per signature), dmarc."""
        spf_prop = "smtp.mailfrom" if self.spf.identity == "mailfrom" else "smtp.helo"
        spf_reason = self.spf.reason if self.spf.result in ("temperror", "permerror") else ""
        items = [_method("spf", self.spf.result, spf_reason, [(spf_prop, self.spf.domain)])]
        if not self.dkim:
            items.append("dkim=none")
        for result in self.dkim:
            items.append(
                _method(
                    "dkim",
                    result.result,
                    result.reason,
                    [("header.d", result.domain), ("header.s", result.selector)],
                )
            )
        dmarc = _method(
            "dmarc",
            self.dmarc.result,
            self.dmarc.reason if self.dmarc.result != "fail" else "",
            [],
        )
        if self.dmarc.policy:
            dmarc += f" (p={self.dmarc.policy} dis={self.dmarc_policy})"
        if self.dmarc.from_domain:
            dmarc += f" header.from={_value(self.dmarc.from_domain)}"
        items.append(dmarc)
        return items

    def header(self) -> str:
        """``Authentication-Results: <authserv-id>; spf=…; dkim=…; dmarc=…`` on one line."""
        return "Authentication-Results: " + "; ".join([self.authserv_id, *self.results()])

    def header_line(self) -> bytes:
        """:meth:`header` folded one result per line, CRLF-terminated, ready to prepend."""
        body = ";\r\n\t".join([self.authserv_id, *self.results()])
        return f"Authentication-Results: {body}\r\n".encode("ascii", "replace")

    def _authenticated_for(self, domain: str) -> bool:
        spf_ok = self.spf.result == "pass" and aligned(self.spf.domain, domain, "r")
        dkim_ok = any(r.result == "pass" and aligned(r.domain, domain, "r") for r in self.dkim)
        return spf_ok or dkim_ok

    def rejects_local_spoof(self, our_domains: Collection[str]) -> bool:
        """True when mail from outside claims one of ``our_domains`` (or a subdomain) in From
        or MAIL FROM without proving it: DMARC pass, or an SPF or DKIM pass aligned with
        that domain. Our own users send through authenticated submission, never the MX.

        Check :attr:`temporary_failure` first: when DNS left a result undecided, a temporary
        refusal (451 4.7.0) is fairer than 550 5.7.1 with :func:`spoof_reason`."""
        ours = {d.strip().lower().rstrip(".") for d in our_domains if d.strip()}

        def is_ours(domain: str) -> bool:
            return any(domain == d or domain.endswith("." + d) for d in ours)

        for domain in self.from_domains:
            if not is_ours(domain):
                continue
            dmarc_ok = self.dmarc.result == "pass" and self.dmarc.from_domain == domain
            if not dmarc_ok and not self._authenticated_for(domain):
                return True
        envelope = self.mail_from_domain
        return bool(envelope) and is_ours(envelope) and not self._authenticated_for(envelope)


def spoof_error() -> PolicyRejected:
    """The refusal of a message spoofing one of our domains (SMTP 550 5.7.1)."""
    return PolicyRejected(
        "Message refusé : l'expéditeur utilise un domaine de ce serveur sans être "
        "authentifié (SPF, DKIM et DMARC en échec). Les utilisateurs du cabinet envoient "
        "leurs messages par la soumission authentifiée (ports 587 ou 465).",
        "Message refused: the sender uses a domain of this server without being "
        "authenticated (SPF, DKIM and DMARC failed). The practice's users send their "
        "messages through authenticated submission (ports 587 or 465).",
    )


def spoof_reason(lang: str | None = None) -> str:
    """:func:`spoof_error`'s text in ``lang`` (default: :func:`caducee.i18n.language`)."""
    return spoof_error().message(lang or language())


def dmarc_reject_error(domain: str) -> PolicyRejected:
    """The refusal of a message whose From domain asks DMARC receivers to reject it."""
    return PolicyRejected(
        f"Message refusé : le domaine {domain} demande (DMARC p=reject) le rejet des "
        "messages qu'il n'a pas authentifiés, et celui-ci ne l'est pas.",
        f"Message refused: domain {domain} asks (DMARC p=reject) that mail it did not "
        "authenticate be rejected, and this message is not authenticated.",
    )


async def _guard(check: Awaitable[Any], fallback: Any, what: str) -> Any:
    """Never let a bug in one check break the SMTP session: log it, report ``fallback``."""
    try:
        return await check
    except Exception:
        log.exception("%s check failed unexpectedly", what)
        return fallback


async def evaluate_inbound(
    settings: Settings, raw: bytes, client_ip: str, helo: str, mail_from: str
) -> AuthVerdict:
    """SPF, DKIM and DMARC for a message received on the MX. Never raises for DNS trouble."""
    domains, usable = from_header_domains(raw)
    envelope_domain = mail_from.rpartition("@")[2].strip().lower().rstrip(".")
    try:
        resolver = make_resolver(settings)
    except CaduceeError as error:
        log.error("DNS resolver unusable: %s", error.en)
        spf_domain = envelope_domain or helo.strip().lower()
        return AuthVerdict(
            settings.hostname,
            SpfResult("temperror", spf_domain, "mailfrom" if mail_from else "helo", "resolver"),
            (),
            DmarcResult("temperror", domains[0] if domains else "", reason="resolver"),
            domains,
            envelope_domain,
        )
    if _public_suffixes.cache_info().currsize == 0:
        await asyncio.to_thread(_public_suffixes)  # parse the list once, off the event loop
    spf_domain = envelope_domain or helo.strip().lower().rstrip(".")
    identity = "mailfrom" if mail_from else "helo"
    spf, dkim_results = await asyncio.gather(
        _guard(
            check_spf(resolver, client_ip, helo, mail_from),
            SpfResult("temperror", spf_domain, identity, "internal error"),
            "SPF",
        ),
        _guard(
            check_dkim(resolver, raw),
            (DkimResult("temperror", reason="internal error"),),
            "DKIM",
        ),
    )
    dmarc = await _guard(
        check_dmarc(resolver, domains, usable, spf, dkim_results),
        DmarcResult("temperror", domains[0] if domains else "", reason="internal error"),
        "DMARC",
    )
    return AuthVerdict(settings.hostname, spf, dkim_results, dmarc, domains, envelope_domain)


def strip_own_results(raw: bytes, authserv_id: str) -> bytes:
    """``raw`` without Authentication-Results fields claiming to be ours (RFC 8601 §5):
    only we may write them, so earlier ones are forgeries."""
    head = _header_block(raw)
    lines = head.splitlines(keepends=True)
    kept: list[bytes] = []
    dropping = False
    own = authserv_id.strip().lower().encode()
    for line in lines:
        if line[:1] in (b" ", b"\t") and line.strip():
            if not dropping:
                kept.append(line)
            continue
        dropping = False
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"authentication-results":
            ident = re.split(rb"[\s;(]", value.strip(), maxsplit=1)[0].lower()
            if ident == own:
                dropping = True
                continue
        kept.append(line)
    return b"".join(kept) + raw[len(head) :]


# ===== DKIM signing ============================================================================

#: Signed when present (RFC 6376 §5.4.1), with every X-MSS-* (MSSanté) field.
SIGNED_HEADERS: Final = (
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "in-reply-to",
    "references",
)


def dkim_sign(settings: Settings, raw: bytes, domain: str) -> bytes:
    """``raw`` with a DKIM-Signature (d=``domain``, relaxed/relaxed, rsa-sha256) prepended.

    The domain's key is created if it does not exist yet (publish it: ``caducee dns``). From is
    signed one extra time so that a second From cannot be added (RFC 6376 §8.15). CPU-bound:
    from asyncio, call :func:`dkim_sign_async`.
    """
    key = ensure_dkim_key(settings, domain)
    first_line_end = raw.find(b"\n")
    linesep = (
        b"\r\n"
        if first_line_end > 0 and raw[first_line_end - 1 : first_line_end] == b"\r"
        else b"\n"
    )
    try:
        signer = dkim.DKIM(raw, logger=_dkim_log, linesep=linesep)
        names = [name.decode("ascii", "replace").lower() for name, _ in signer.headers]
        include = [n for n in names if n in SIGNED_HEADERS or n.startswith("x-mss-")]
        if "from" not in include:
            raise InvalidInput(
                "Impossible de signer (DKIM) un message sans en-tête From.",
                "Cannot DKIM-sign a message without a From header.",
            )
        include.append("from")
        signature = signer.sign(
            key.selector.encode("ascii"),
            key.domain.encode("ascii"),
            key.private_pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[n.encode("ascii") for n in include],
        )
    except dkim.DKIMException as exc:
        raise InvalidInput(
            f"Signature DKIM impossible : message mal formé ({_short(exc)}).",
            f"DKIM signing failed: malformed message ({_short(exc)}).",
        ) from None
    return bytes(signature) + raw


async def dkim_sign_async(settings: Settings, raw: bytes, domain: str) -> bytes:
    """:func:`dkim_sign` in a worker thread."""
    return await asyncio.to_thread(dkim_sign, settings, raw, domain)
