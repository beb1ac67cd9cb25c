"""Random identifiers for records whose id must exist before they are stored (blobs, tokens)."""

from __future__ import annotations

import secrets


def new_blob_id() -> str:
    """128 random bits, hex: names a blob and binds its ciphertext to it."""
    return secrets.token_hex(16)
