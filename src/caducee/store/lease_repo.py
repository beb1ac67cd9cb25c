"""Leases in the database: a named thing held by one holder until an expiry, taken over only
once expired (POP3 exclusive access across worker processes and nodes)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.tables import pop3_leases


async def take_pop3(
    conn: AsyncConnection, mailbox_id: int, holder: str, now: datetime, until: datetime
) -> bool:
    """Take the lease of ``mailbox_id`` for ``holder`` until ``until``: one atomic
    insert-or-take-over-if-expired statement; False when someone else holds it."""
    values = {"mailbox_id": mailbox_id, "holder": holder, "expires_at": until}
    insert = (
        postgresql.insert(pop3_leases)
        if conn.dialect.name == "postgresql"
        else sqlite.insert(pop3_leases)
    )
    statement = (
        insert.values(values)
        .on_conflict_do_update(
            index_elements=[pop3_leases.c.mailbox_id],
            set_={"holder": holder, "expires_at": until},
            where=or_(pop3_leases.c.expires_at <= now, pop3_leases.c.holder == holder),
        )
        .returning(pop3_leases.c.holder)
    )
    return bool((await conn.execute(statement)).scalar_one_or_none() == holder)


async def refresh_pop3(
    conn: AsyncConnection, mailbox_id: int, holder: str, until: datetime
) -> bool:
    """Push ``holder``'s lease to ``until``; False if it was lost (expired and taken over)."""
    result = await conn.execute(
        update(pop3_leases)
        .where(pop3_leases.c.mailbox_id == mailbox_id, pop3_leases.c.holder == holder)
        .values(expires_at=until)
    )
    return bool(result.rowcount)


async def release_pop3(conn: AsyncConnection, mailbox_id: int, holder: str) -> None:
    await conn.execute(
        delete(pop3_leases).where(
            pop3_leases.c.mailbox_id == mailbox_id, pop3_leases.c.holder == holder
        )
    )
