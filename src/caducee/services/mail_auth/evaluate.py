"""The MX's checks of one message: SPF and DKIM side by side, then DMARC, into one verdict.

Never raises for DNS trouble (a check left undecided is a ``temperror``), nor for a bug in one
check: the SMTP session goes on with that check reported as ``temperror``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from caducee.config import Settings
from caducee.errors import CaduceeError
from caducee.services.dns import make_resolver
from caducee.services.mail_auth.authres import AuthVerdict
from caducee.services.mail_auth.dkim import DkimResult, check_dkim
from caducee.services.mail_auth.dmarc import (
    DmarcResult,
    check_dmarc,
    from_header_domains,
    load_public_suffixes,
)
from caducee.services.mail_auth.spf import SpfResult, check_spf

log = logging.getLogger("caducee.services.mail_auth")


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
    await load_public_suffixes()
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
