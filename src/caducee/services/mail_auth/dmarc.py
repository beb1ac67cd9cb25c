"""DMARC (RFC 7489): does the From domain's owner vouch for this message, and what does it ask?

Policy discovery at ``_dmarc.<From domain>`` then at the organisational domain (§6.6.3), found
with the Public Suffix List that authheaders ships (publicsuffix2's own copy otherwise; both are
offline files, §3.2), relaxed/strict identifier alignment (§3.1) of the SPF and DKIM results,
p/sp and pct (§6.6.4). The From domains come from exactly one From field (§6.6.1). DNS failures
never raise: they yield ``temperror``. Organisational domains are kept in an LRU of 4,096.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.resources
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Final

import dns.asyncresolver
from publicsuffix2 import PublicSuffixList

from caducee.errors import PolicyRejected
from caducee.services.dns import DnsTemporaryError, lookup
from caducee.services.mail_auth.dkim import DkimResult
from caducee.services.mail_auth.headers import header_block
from caducee.services.mail_auth.spf import SpfResult

# ----- organisational domains (§3.2) and alignment (§3.1) ---------------------------------------


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    """The Public Suffix List: authheaders' copy (newer), else publicsuffix2's. Offline."""
    try:
        ref = importlib.resources.files("authheaders") / "public_suffix_list.txt"
        with importlib.resources.as_file(ref) as path:
            return PublicSuffixList(str(path))
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return PublicSuffixList()


async def load_public_suffixes() -> None:
    """Parse the Public Suffix List once, in a worker thread (not on the event loop)."""
    if _public_suffixes.cache_info().currsize == 0:
        await asyncio.to_thread(_public_suffixes)


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


# ----- policy discovery and evaluation (§6.6) ----------------------------------------------------

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


def from_header_domains(raw: bytes) -> tuple[tuple[str, ...], bool]:
    """Domains of every address in every From field, and whether DMARC can use them:
    exactly one From field whose addresses share one domain (RFC 7489 §6.6.1)."""
    values: list[str] = []
    current: list[str] = []
    for line in header_block(raw).decode("utf-8", "replace").splitlines():
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


def dmarc_reject_error(domain: str) -> PolicyRejected:
    """The refusal of a message whose From domain asks DMARC receivers to reject it."""
    return PolicyRejected(
        f"Message refusé : le domaine {domain} demande (DMARC p=reject) le rejet des "
        "messages qu'il n'a pas authentifiés, et celui-ci ne l'est pas.",
        f"Message refused: domain {domain} asks (DMARC p=reject) that mail it did not "
        "authenticate be rejected, and this message is not authenticated.",
    )
