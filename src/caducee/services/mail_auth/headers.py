"""The header section of a raw message, as SPF, DKIM, DMARC and Authentication-Results read it."""

from __future__ import annotations


def header_block(raw: bytes) -> bytes:
    """The header fields of ``raw`` with the empty line ending them (RFC 5322 §2.1)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(separator)
        if end >= 0:
            return raw[: end + len(separator)]
    return raw
