"""The storage side of the secure pickup portal: rows, sealing, events.

A pickup's patient contact (email, mobile) and its message are sealed with the sender mailbox's
data key (scope ``mailbox:<id>``, record ``pickup:<record id>``). Every event goes both to the
pickup's own log (``pickup_events``) and, when the original message had a Message-ID, to the
sender's trace of that message, so the webmail's trace view shows each opening and download.
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import UTC, datetime

from caducee.app import App
from caducee.domain.pickup import (
    EVENTS,
    Contact,
    Pickup,
    PickupClosed,
    PickupEvent,
    unknown_link,
)
from caducee.services import trace
from caducee.services.audit import AuditEvent
from caducee.store import pickup_repo
from caducee.store.connection import AsyncConnection
from caducee.store.keyring import mailbox_scope

log = logging.getLogger(__name__)

__all__ = [
    "EVENTS",
    "Contact",
    "Pickup",
    "PickupClosed",
    "PickupEvent",
    "unknown_link",
]


def scope_of(pickup: Pickup) -> str:
    return mailbox_scope(pickup.sender_mailbox_id)


def record_of(record_id: str) -> str:
    return f"pickup:{record_id}"


async def by_id(conn: AsyncConnection, pickup_id: int, *, lock: bool = False) -> Pickup:
    """A pickup, or NotFound; ``lock`` holds its row for the caller's transaction."""
    pickup = await pickup_repo.by_id(conn, pickup_id, lock=lock)
    if pickup is None:
        raise unknown_link()
    return pickup


async def by_token(app: App, token: str) -> Pickup:
    """The pickup of a link's token, or NotFound (the same for any unknown token)."""
    async with app.db.read() as conn:
        pickup = await pickup_repo.by_link_token(conn, token)
    if pickup is None:
        raise unknown_link()
    return pickup


async def passphrase_hash(conn: AsyncConnection, pickup_id: int) -> str | None:
    return await pickup_repo.passphrase_hash(conn, pickup_id)


async def contact(app: App, pickup: Pickup) -> Contact:
    async with app.db.read() as conn:
        return await read_contact(conn, app, pickup)


async def read_contact(conn: AsyncConnection, app: App, pickup: Pickup) -> Contact:
    """The patient's email and mobile, opened on the caller's connection."""
    sealed = await pickup_repo.contact_sealed(conn, pickup.id)
    if sealed is None:
        raise unknown_link()
    plain = await app.keyring.open(
        conn, scope_of(pickup), record_of(pickup.record_id), "contact", sealed
    )
    values = json.loads(plain)
    return Contact(str(values["email"]), str(values["mobile"]))


async def content(app: App, pickup: Pickup) -> bytes:
    """The message (decrypted); PickupClosed once purged."""
    if pickup.blob_id is None:
        pickup.check_open()
        raise unknown_link()
    async with app.db.read() as conn:
        sealed = await app.blobs.get(conn, pickup.blob_id)
        return await app.keyring.open(
            conn, scope_of(pickup), record_of(pickup.record_id), "raw", sealed
        )


async def code_key(app: App, pickup: Pickup) -> bytes:
    """The key of the pickup's one-time code hashes (derived from the mailbox's data key)."""
    async with app.db.read() as conn:
        return await read_code_key(conn, app, pickup)


async def read_code_key(conn: AsyncConnection, app: App, pickup: Pickup) -> bytes:
    """:func:`code_key`, read on the caller's connection."""
    data_key = await app.keyring.data_key(conn, scope_of(pickup))
    return hmac.new(data_key, f"pickup-codes:{pickup.record_id}".encode(), "sha256").digest()


async def add_event(
    conn: AsyncConnection,
    pickup: Pickup,
    event: str,
    detail: str = "",
    *,
    now: datetime | None = None,
) -> None:
    """One event in the pickup's log and in the sender's trace (content-free ``detail``).

    The trace names the patient as the pickup keeps them (pseudonym and sealed address, set at
    creation)."""
    assert event in EVENTS, event
    when = now or datetime.now(UTC)
    await pickup_repo.insert_event(conn, pickup.id, event, detail, when)
    if pickup.trace_key is not None:
        named = await pickup_repo.trace_recipient(conn, pickup.id)
        if named is None:  # created before migration 0019 and not converted yet
            log.warning("pickup event not traced pickup=%d", pickup.id)
            return
        concealed = trace.Concealed(*named)
        await trace.record_concealed(
            conn, pickup.sender_mailbox_id, pickup.trace_key, concealed, event, detail, now=when
        )


async def conceal_clear_patients(app: App) -> int:
    """Pickups created before migration 0019: their patient as the sender's trace names them
    (pseudonym and sealed address). Idempotent; returns how many pickups changed."""
    async with app.db.read() as conn:
        rows = await pickup_repo.without_trace_recipient(conn)
    for pickup in rows:
        assert pickup.trace_key is not None
        email = (await contact(app, pickup)).email
        async with app.db.write() as conn:
            concealed = await trace.conceal(
                app.keyring, conn, pickup.sender_mailbox_id, pickup.trace_key, email
            )
            await pickup_repo.set_trace_recipient(conn, pickup.id, concealed.key, concealed.sealed)
    return len(rows)


async def events(app: App, pickup_id: int) -> list[PickupEvent]:
    async with app.db.read() as conn:
        return await pickup_repo.events(conn, pickup_id)


def audit_event(
    pickup: Pickup, action: str, source: str, result: str = "ok", **details: int
) -> AuditEvent:
    """An audit record about a pickup: ids only, never the content or the patient."""
    return AuditEvent(
        actor=f"pickup:{pickup.id}",
        action=action,
        target=f"mailbox:{pickup.sender_mailbox_id}",
        source=source,
        result=result,
        details={"pickup": pickup.id, **details},
    )
