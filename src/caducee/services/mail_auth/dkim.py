"""DKIM (RFC 6376): verifying the signatures of mail arriving on the MX, signing mail leaving.

Verification (:func:`check_dkim`) uses dkimpy for canonicalisation and cryptography: the key
record (§3.6.2) is fetched asynchronously by us, then the signature is verified (§6.1) in a
worker thread. rsa-sha1 signatures are refused (RFC 8301 §3.1) and keys shorter than 1024 bits
fail (RFC 8301 §3.2). One result per signature, the first :data:`MAX_DKIM_SIGNATURES`; DNS
failures never raise: they yield ``temperror``.

Signing (:func:`dkim_sign`) uses the domain's key (relaxed/relaxed, rsa-sha256, §3.4, §3.3).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Final

import dkim
import dns.asyncresolver

from caducee.config import Settings
from caducee.errors import InvalidInput
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
            await _verify_signature(resolver, verifier, index)
            for index in range(min(count, MAX_DKIM_SIGNATURES))
        ]
    )


# ----- signing (§5) ------------------------------------------------------------------------------

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
