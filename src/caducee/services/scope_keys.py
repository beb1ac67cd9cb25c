"""The data key of a scope that is not a mailbox (a practice's contacts or patients, API
tokens…), created on first use: read it when it exists, else create it in a write
transaction (creating it twice is harmless: ``ensure_data_key`` keeps the first)."""

from __future__ import annotations

import hashlib
import hmac

from caducee.app import App
from caducee.store import queue_repo

#: Labels of the keyed e-mail pseudonyms (they keep the values already stored distinct).
CONTACT_EMAIL = "email"
PATIENT_EMAIL = "patient-email"


def patient_scope(practice_id: int) -> str:
    """The scope of a practice's patient registry (its data key seals the records)."""
    return f"patients:{practice_id}"


def keyed_email(key: bytes, label: str, email: str) -> str:
    """A keyed pseudonym of an address: HMAC-SHA256 under a scope's data key, so that an
    address can be found without being stored in clear (case of the address ignored)."""
    message = label.encode() + b":" + email.lower().encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


async def scope_key(app: App, scope: str) -> bytes:
    async with app.db.read() as conn:
        if await queue_repo.has_data_key(conn, scope):
            return await app.keyring.data_key(conn, scope)
    async with app.db.write() as conn:
        await queue_repo.ensure_data_key(conn, app.keyring, scope)
        return await app.keyring.data_key(conn, scope)
