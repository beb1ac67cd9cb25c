"""The Received trace header (RFC 5321 §4.4, RFC 3848 protocol types)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from email.utils import format_datetime

from caducee.services.envelope import ClientInfo


def received_header(hostname: str, client: ClientInfo, recipient: str | None = None) -> bytes:
    """One ``Received:`` line, folded, CRLF-terminated. Never includes the login (privacy)."""
    helo = "".join(c for c in client.helo if c.isprintable() and c not in "()\\")[:100]
    parts = [
        f"from {helo or 'unknown'} ([{client.ip}])",
        f"by {hostname}",
        f"with {client.protocol}",
        f"id {secrets.token_hex(8)}",
    ]
    if recipient and "\r" not in recipient and "\n" not in recipient:
        parts.append(f"for <{recipient}>")
    when = format_datetime(datetime.now(UTC).astimezone())
    tls = f"\r\n\t(using {client.tls})" if client.tls else ""
    return ("Received: " + "\r\n\t".join(parts) + tls + f";\r\n\t{when}\r\n").encode(
        "ascii", "replace"
    )
