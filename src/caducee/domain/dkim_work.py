"""The CPU half of DKIM (RFC 6376): canonicalising and hashing a message to verify one of its
signatures (§6.1.3) or to sign it (§5), with dkimpy — pure Python, so a big message's
canonicalisation holds the interpreter lock (0.26 s for 15 MB). Pure functions of bytes: a big
message runs them in a worker process (``services.cpu_pool``, issue 17); the key record's DNS
lookup and the signing key's files stay in ``services.mail_auth.dkim``."""

from __future__ import annotations

import logging
import re

import dkim

from caducee.errors import InvalidInput

_dkim_log = logging.getLogger("caducee.services.mail_auth.dkimpy")

#: Signed when present (RFC 6376 §5.4.1), with every X-MSS-* (MSSanté) field.
SIGNED_HEADERS = (
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


def verify_signature(raw: bytes, index: int, key_record: bytes) -> str | None:
    """Why the ``index``-th DKIM-Signature of ``raw`` fails with the key record
    ``key_record`` (§6.1.3: body hash, then the signature), or ``None`` when it verifies."""
    verifier = dkim.DKIM(raw, logger=_dkim_log)

    def key_lookup(_name: bytes, timeout: float = 5) -> bytes:
        return key_record

    try:
        sig, include_headers, sig_headers = verifier.verify_headerprep(index)
        if verifier.verify_sig(sig, include_headers, sig_headers[index], key_lookup):
            return None
    except dkim.DKIMException as exc:  # body hash mismatch, key too small, ...
        return short_reason(exc)
    return "signature did not verify"


def signature(raw: bytes, selector: str, domain: str, private_pem: bytes) -> bytes:
    """The DKIM-Signature field of ``raw`` (d=``domain``, relaxed/relaxed, rsa-sha256), to
    prepend to it. From is signed one extra time so that a second From cannot be added (RFC
    6376 §8.15)."""
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
        return bytes(
            signer.sign(
                selector.encode("ascii"),
                domain.encode("ascii"),
                private_pem,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=[n.encode("ascii") for n in include],
            )
        )
    except dkim.DKIMException as exc:
        raise InvalidInput(
            f"Signature DKIM impossible : message mal formé ({short_reason(exc)}).",
            f"DKIM signing failed: malformed message ({short_reason(exc)}).",
        ) from None


def short_reason(exc: Exception) -> str:
    """A DKIM error's reason, short and printable (for Authentication-Results)."""
    text = str(exc).split(" (", 1)[0]
    return re.sub(r"[^\x20-\x7e]", "", text)[:80]
