"""SQL of the sender's trace (``message_trace``) and of per-mailbox settings it depends on
(``mailbox_settings``: read receipts). Recipients are stored as a keyed pseudonym and a sealed
copy; rows written before migration 0019 may still hold the address in ``recipient``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.tables import mailbox_settings, message_trace, outbound_messages
from caducee.store.times import aware

t = message_trace


@dataclass(frozen=True)
class TraceRow:
    id: int
    mailbox_id: int
    trace_key: str
    recipient: str  # in clear only before migration 0019 (and until converted)
    recipient_key: str | None
    recipient_sealed: bytes | None
    event: str
    detail: str
    ts: datetime


def _row(row: object) -> TraceRow:
    r = row._mapping  # type: ignore[attr-defined]
    sealed = r["recipient_sealed"]
    return TraceRow(
        id=int(r["id"]),
        mailbox_id=int(r["mailbox_id"]),
        trace_key=r["trace_key"],
        recipient=r["recipient"],
        recipient_key=r["recipient_key"],
        recipient_sealed=None if sealed is None else bytes(sealed),
        event=r["event"],
        detail=r["detail"],
        ts=aware(r["ts"]),
    )


async def insert_event(
    conn: AsyncConnection,
    *,
    mailbox_id: int,
    trace_key: str,
    recipient_key: str,
    recipient_sealed: bytes,
    event: str,
    detail: str,
    ts: datetime,
) -> None:
    await conn.execute(
        insert(t).values(
            mailbox_id=mailbox_id,
            trace_key=trace_key,
            recipient="",
            recipient_key=recipient_key,
            recipient_sealed=recipient_sealed,
            event=event,
            detail=detail,
            ts=ts,
        )
    )


async def queued_origin(conn: AsyncConnection, queue_id: int) -> tuple[int, str] | None:
    """(origin mailbox id, trace key) of a queued message written in one of our mailboxes."""
    m = outbound_messages
    row = (
        await conn.execute(
            select(m.c.origin_mailbox_id, m.c.trace_key).where(
                m.c.id == queue_id,
                m.c.trace_key.is_not(None),
                m.c.origin_mailbox_id.is_not(None),
            )
        )
    ).first()
    return None if row is None else (int(row.origin_mailbox_id), str(row.trace_key))


async def events_of(conn: AsyncConnection, mailbox_id: int, trace_key: str) -> list[TraceRow]:
    """One message's trace in a mailbox, in order."""
    rows = await conn.execute(
        select(t)
        .where(t.c.mailbox_id == mailbox_id, t.c.trace_key == trace_key)
        .order_by(t.c.ts, t.c.id)
    )
    return [_row(row) for row in rows]


async def events_of_messages(conn: AsyncConnection, trace_keys: Sequence[str]) -> list[TraceRow]:
    """Every mailbox's trace rows of these messages, in order."""
    rows = await conn.execute(select(t).where(t.c.trace_key.in_(trace_keys)).order_by(t.c.id))
    return [_row(row) for row in rows]


async def delete_before(conn: AsyncConnection, before: datetime) -> int:
    result = await conn.execute(delete(t).where(t.c.ts < before))
    return int(result.rowcount or 0)


async def in_clear(conn: AsyncConnection, limit: int) -> list[TraceRow]:
    """Rows still naming their recipient in clear (written before migration 0019)."""
    rows = await conn.execute(
        select(t).where(t.c.recipient_key.is_(None)).order_by(t.c.id).limit(limit)
    )
    return [_row(row) for row in rows]


async def conceal_row(
    conn: AsyncConnection, row_id: int, recipient_key: str, recipient_sealed: bytes, detail: str
) -> None:
    await conn.execute(
        update(t)
        .where(t.c.id == row_id)
        .values(
            recipient="",
            recipient_key=recipient_key,
            recipient_sealed=recipient_sealed,
            detail=detail,
        )
    )


async def read_receipts_enabled(conn: AsyncConnection, mailbox_id: int) -> bool:
    value = await conn.scalar(
        select(mailbox_settings.c.read_receipts).where(mailbox_settings.c.mailbox_id == mailbox_id)
    )
    return bool(value)


async def set_read_receipts(conn: AsyncConnection, mailbox_id: int, enabled: bool) -> None:
    updated = await conn.execute(
        update(mailbox_settings)
        .where(mailbox_settings.c.mailbox_id == mailbox_id)
        .values(read_receipts=enabled)
    )
    if not updated.rowcount:
        await conn.execute(
            insert(mailbox_settings).values(mailbox_id=mailbox_id, read_receipts=enabled)
        )
