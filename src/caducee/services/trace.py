"""The sender's trace of a sent message (per recipient): queued, delivered, deferred, bounced,
expired, read. Keyed by the SHA-256 of the Message-ID; no subject, no content."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.app import App
from caducee.store.auth_repo import aware
from caducee.store.tables import mailbox_settings, message_trace, outbound_messages

EVENTS = ("queued", "delivered", "deferred", "bounced", "expired", "read")


def trace_key(message_id: str) -> str | None:
    """The key of a Message-ID (angle brackets and case of the domain do not matter)."""
    value = message_id.strip().strip("<>").strip()
    if not value:
        return None
    local, _, domain = value.rpartition("@")
    normalised = f"{local}@{domain.lower()}" if local else value
    return hashlib.sha256(normalised.encode("utf-8", "replace")).hexdigest()


async def record(
    conn: AsyncConnection,
    mailbox_id: int,
    key: str,
    recipient: str,
    event: str,
    detail: str = "",
    *,
    now: datetime | None = None,
) -> None:
    await conn.execute(
        insert(message_trace).values(
            mailbox_id=mailbox_id,
            trace_key=key,
            recipient=recipient[:320],
            event=event,
            detail=detail[:500],
            ts=now or datetime.now(UTC),
        )
    )


async def record_outbound(
    conn: AsyncConnection, queue_id: int, recipient: str, event: str, detail: str, now: datetime
) -> None:
    """An outbound result, traced when the queued message came from one of our mailboxes."""
    m = outbound_messages
    chosen = select(
        m.c.origin_mailbox_id,
        m.c.trace_key,
        literal(recipient[:320]),
        literal(event),
        literal(detail[:500]),
        literal(now),
    ).where(m.c.id == queue_id, m.c.trace_key.is_not(None), m.c.origin_mailbox_id.is_not(None))
    await conn.execute(
        insert(message_trace).from_select(
            ["mailbox_id", "trace_key", "recipient", "event", "detail", "ts"], chosen
        )
    )


@dataclass(frozen=True)
class TraceEvent:
    recipient: str
    event: str
    detail: str
    ts: datetime


async def events(app: App, mailbox_id: int, message_id: str) -> list[TraceEvent]:
    key = trace_key(message_id)
    if key is None:
        return []
    async with app.db.read() as conn:
        rows = await conn.execute(
            select(message_trace)
            .where(message_trace.c.mailbox_id == mailbox_id, message_trace.c.trace_key == key)
            .order_by(message_trace.c.ts, message_trace.c.id)
        )
        found = []
        for row in rows:
            ts = aware(row.ts)
            assert ts is not None
            found.append(TraceEvent(row.recipient, row.event, row.detail, ts))
        return found


async def read_receipts_enabled(app: App, mailbox_id: int) -> bool:
    async with app.db.read() as conn:
        value = await conn.scalar(
            select(mailbox_settings.c.read_receipts).where(
                mailbox_settings.c.mailbox_id == mailbox_id
            )
        )
    return bool(value)


async def set_read_receipts(app: App, mailbox_id: int, enabled: bool) -> None:
    async with app.db.write() as conn:
        updated = await conn.execute(
            mailbox_settings.update()
            .where(mailbox_settings.c.mailbox_id == mailbox_id)
            .values(read_receipts=enabled)
        )
        if not updated.rowcount:
            await conn.execute(
                insert(mailbox_settings).values(mailbox_id=mailbox_id, read_receipts=enabled)
            )
