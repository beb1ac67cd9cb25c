"""DKIM (RFC 6376): verifying the signatures of mail arriving on the MX, signing mail leaving.

Verification (:func:`check_dkim`) uses dkimpy for canonicalisation and cryptography: the key
record (§3.6.2) is fetched asynchronously by us, then the signature is verified (§6.1) by
``domain.dkim_work`` in a worker thread, or a worker process for a big message. rsa-sha1
signatures are refused (RFC 8301 §3.1) and keys shorter than 1024 bits fail (RFC 8301 §3.2).
One result per signature, the first :data:`MAX_DKIM_SIGNATURES`; DNS failures never raise:
they yield ``temperror``.

Signing (:func:`dkim_sign`) uses the domain's key (relaxed/relaxed, rsa-sha256, §3.4, §3.3).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

import dkim
import dns.asyncresolver

from caducee.config import Settings
from caducee.domain import dkim_work
from caducee.services import cpu_pool
from caducee.services.dkim_keys import ensure_dkim_key
from caducee.services.dns import DnsTemporaryError, lookup
from caducee.services.mail_auth.headers import header_block

_dkim_log = logging.getLogger("caducee.services.mail_auth.dkimpy")

# ----- verification (§6) -------------------------------------------------------------------------

MAX_DKIM_SIGNATURES: Final = 5  # verified per message; more are ignored


@dataclass(frozen=True)
class DkimResult:
    """``result`` is pass, fail, neutral, temperror or permerror (RFC 8601 §2.7.1)."""

    result: str
    domain: str = ""  # d=
    selector: str = ""  # s=
    reason: str = ""


_short = dkim_work.short_reason


def _field(sig: dict[bytes, bytes], tag: bytes) -> str:
    return sig.get(tag, b"").decode("ascii", "replace").strip()


async def _verify_signature(
    resolver: dns.asyncresolver.Resolver, verifier: dkim.DKIM, raw: bytes, index: int
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
    sig = prepared[0]
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

    # canonicalising and hashing the body: a big message in a worker process (issue 17)
    failure = await cpu_pool.run_sized(len(raw), dkim_work.verify_signature, raw, index, key_record)
    if failure is not None:  # body hash mismatch, key too small, bad signature
        return DkimResult("fail", domain, selector, failure)
    return DkimResult("pass", domain, selector)


def _parse_for_dkim(raw: bytes) -> tuple[dkim.DKIM, int]:
    verifier = dkim.DKIM(raw, logger=_dkim_log)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    return verifier, count


async def check_dkim(resolver: dns.asyncresolver.Resolver, raw: bytes) -> tuple[DkimResult, ...]:
    """One result per DKIM-Signature (the first five); empty when the message has none."""
    if b"dkim-signature" not in header_block(raw).lower():
        return ()
    try:
        verifier, count = await asyncio.to_thread(_parse_for_dkim, raw)
    except dkim.DKIMException:
        if b"dkim-signature:" in header_block(raw).lower():
            return (DkimResult("permerror", reason="unparsable header"),)
        return ()
    return tuple(
        [
            await _verify_signature(resolver, verifier, raw, index)
            for index in range(min(count, MAX_DKIM_SIGNATURES))
        ]
    )


# ----- signing (§5) ------------------------------------------------------------------------------

SIGNED_HEADERS: Final = dkim_work.SIGNED_HEADERS


def dkim_sign(settings: Settings, raw: bytes, domain: str) -> bytes:
    """``raw`` with a DKIM-Signature (d=``domain``, relaxed/relaxed, rsa-sha256) prepended.

    The domain's key is created if it does not exist yet (publish it: ``caducee dns``). From is
    signed one extra time so that a second From cannot be added (RFC 6376 §8.15). CPU-bound:
    from asyncio, call :func:`dkim_sign_async`.
    """
    key = ensure_dkim_key(settings, domain)
    return dkim_work.signature(raw, key.selector, key.domain, key.private_pem) + raw


async def dkim_sign_async(settings: Settings, raw: bytes, domain: str) -> bytes:
    """:func:`dkim_sign` off the event loop: the key's files in a thread, the signing of a big
    message in a worker process (dkimpy's canonicalisation is pure Python, issue 17)."""
    key = await asyncio.to_thread(ensure_dkim_key, settings, domain)
    signed = await cpu_pool.run_sized(
        len(raw), dkim_work.signature, raw, key.selector, key.domain, key.private_pem
    )
    return await cpu_pool.concat(signed, raw)
