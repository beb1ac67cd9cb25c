"""The storage side of the secure pickup portal: rows, sealing, events.

A pickup's patient contact (email, mobile) and its message are sealed with the sender mailbox's
data key (scope ``mailbox:<id>``, record ``pickup:<record id>``). Every event goes both to the
pickup's own log (``pickup_events``) and, when the original message had a Message-ID, to the
sender's trace of that message, so the webmail's trace view shows each opening and download.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.app import App
from caducee.errors import AccessDenied, NotFound
from caducee.services import trace
from caducee.services.audit import AuditEvent
from caducee.store.keyring import mailbox_scope
from caducee.store.tables import pickup_events, pickups
from caducee.store.times import aware

log = logging.getLogger(__name__)

#: Events of a pickup, as the sender's trace shows them (≤ 12 characters: trace column).
EVENTS = (
    "deposited",
    "opened",
    "downloaded",
    "replied",
    "code_sent",
    "code_failed",
    "locked",
    "revoked",
    "purged",
)


class PickupClosed(AccessDenied):
    """The link can no longer be used: ``reason`` is expired, revoked or locked."""

    def __init__(self, reason: str, fr: str, en: str) -> None:
        super().__init__(fr, en)
        self.reason = reason


def unknown_link() -> NotFound:
    return NotFound(
        "Lien inconnu ou expiré : vérifiez l'adresse reçue par courriel, ou demandez un nouvel "
        "envoi à votre cabinet.",
        "Unknown or expired link: check the address you received by email, or ask your "
        "practice to send the message again.",
    )


@dataclass(frozen=True)
class Contact:
    email: str
    mobile: str


@dataclass(frozen=True)
class Pickup:
    """One message left on the server for one patient."""

    id: int
    practice_id: int
    sender_mailbox_id: int
    patient_id: int | None
    record_id: str
    blob_id: str | None
    size: int
    trace_key: str | None
    has_passphrase: bool
    failed_attempts: int
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    locked_at: datetime | None
    purged_at: datetime | None
    #: The patient's link, known only right after creation (never stored).
    link: str = ""

    def state(self, now: datetime | None = None) -> str:
        """``open``, or why not: ``revoked``, ``locked``, ``expired``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.locked_at is not None:
            return "locked"
        if self.purged_at is not None or self.expires_at <= (now or datetime.now(UTC)):
            return "expired"
        return "open"

    def check_open(self, now: datetime | None = None) -> None:
        reason = self.state(now)
        if reason == "revoked":
            raise PickupClosed(
                reason,
                "Ce message a été retiré par votre cabinet : contactez-le si besoin.",
                "This message was withdrawn by your practice: contact it if needed.",
            )
        if reason == "locked":
            raise PickupClosed(
                reason,
                "Ce lien est verrouillé après trop de codes erronés. Votre cabinet est prévenu : "
                "contactez-le pour recevoir un nouveau lien.",
                "This link is locked after too many wrong codes. Your practice has been told: "
                "contact it to get a new link.",
            )
        if reason == "expired":
            raise PickupClosed(
                reason,
                "Ce message a expiré et n'est plus disponible : demandez un nouvel envoi à "
                "votre cabinet.",
                "This message has expired and is no longer available: ask your practice to "
                "send it again.",
            )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def scope_of(pickup: Pickup) -> str:
    return mailbox_scope(pickup.sender_mailbox_id)


def record_of(record_id: str) -> str:
    return f"pickup:{record_id}"


def _row(row: Row[object]) -> Pickup:
    values = row._mapping
    created, expires = aware(values["created_at"]), aware(values["expires_at"])
    assert created is not None and expires is not None
    return Pickup(
        id=values["id"],
        practice_id=values["practice_id"],
        sender_mailbox_id=values["sender_mailbox_id"],
        patient_id=values["patient_id"],
        record_id=values["record_id"],
        blob_id=values["blob_id"],
        size=values["size"],
        trace_key=values["trace_key"],
        has_passphrase=values["passphrase_hash"] is not None,
        failed_attempts=values["failed_attempts"],
        created_at=created,
        expires_at=expires,
        revoked_at=aware(values["revoked_at"]),
        locked_at=aware(values["locked_at"]),
        purged_at=aware(values["purged_at"]),
    )


async def by_id(conn: AsyncConnection, pickup_id: int, *, lock: bool = False) -> Pickup:
    query = select(pickups).where(pickups.c.id == pickup_id)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise unknown_link()
    return _row(row)


async def by_token(app: App, token: str) -> Pickup:
    """The pickup of a link's token, or NotFound (the same for any unknown token)."""
    if not token or len(token) > 100:
        raise unknown_link()
    async with app.db.read() as conn:
        row = (
            await conn.execute(select(pickups).where(pickups.c.token_hash == token_hash(token)))
        ).first()
    if row is None:
        raise unknown_link()
    return _row(row)


async def passphrase_hash(conn: AsyncConnection, pickup_id: int) -> str | None:
    value = await conn.scalar(select(pickups.c.passphrase_hash).where(pickups.c.id == pickup_id))
    return str(value) if value is not None else None


async def contact(app: App, pickup: Pickup) -> Contact:
    async with app.db.read() as conn:
        return await read_contact(conn, app, pickup)


async def read_contact(conn: AsyncConnection, app: App, pickup: Pickup) -> Contact:
    """The patient's email and mobile, opened on the caller's connection."""
    sealed = await conn.scalar(select(pickups.c.contact_sealed).where(pickups.c.id == pickup.id))
    if sealed is None:
        raise unknown_link()
    plain = await app.keyring.open(
        conn, scope_of(pickup), record_of(pickup.record_id), "contact", bytes(sealed)
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
    await conn.execute(
        insert(pickup_events).values(pickup_id=pickup.id, event=event, detail=detail, ts=when)
    )
    if pickup.trace_key is not None:
        row = (
            await conn.execute(
                select(pickups.c.trace_recipient_key, pickups.c.trace_recipient_sealed).where(
                    pickups.c.id == pickup.id, pickups.c.trace_recipient_key.is_not(None)
                )
            )
        ).first()
        if row is None:  # created before migration 0019 and not converted yet
            log.warning("pickup event not traced pickup=%d", pickup.id)
            return
        concealed = trace.Concealed(row.trace_recipient_key, bytes(row.trace_recipient_sealed))
        await trace.record_concealed(
            conn, pickup.sender_mailbox_id, pickup.trace_key, concealed, event, detail, now=when
        )


async def conceal_clear_patients(app: App) -> int:
    """Pickups created before migration 0019: their patient as the sender's trace names them
    (pseudonym and sealed address). Idempotent; returns how many pickups changed."""
    async with app.db.read() as conn:
        rows = (
            await conn.execute(
                select(pickups).where(
                    pickups.c.trace_key.is_not(None), pickups.c.trace_recipient_key.is_(None)
                )
            )
        ).all()
    for row in rows:
        pickup = _row(row)
        assert pickup.trace_key is not None
        email = (await contact(app, pickup)).email
        async with app.db.write() as conn:
            concealed = await trace.conceal(
                app.keyring, conn, pickup.sender_mailbox_id, pickup.trace_key, email
            )
            await conn.execute(
                update(pickups)
                .where(pickups.c.id == pickup.id)
                .values(trace_recipient_key=concealed.key, trace_recipient_sealed=concealed.sealed)
            )
    return len(rows)


@dataclass(frozen=True)
class PickupEvent:
    event: str
    detail: str
    ts: datetime


async def events(app: App, pickup_id: int) -> list[PickupEvent]:
    async with app.db.read() as conn:
        rows = await conn.execute(
            select(pickup_events)
            .where(pickup_events.c.pickup_id == pickup_id)
            .order_by(pickup_events.c.ts, pickup_events.c.id)
        )
        found = []
        for row in rows:
            ts = aware(row.ts)
            assert ts is not None
            found.append(PickupEvent(row.event, row.detail, ts))
    return found


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
