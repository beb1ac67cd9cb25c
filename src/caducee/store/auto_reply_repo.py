"""SQL of the practitioners' absences (``absences``) and of the auto-replies' memory
(``auto_reply_senders``: who each mailbox answered when, as keyed pseudonyms;
``auto_reply_messages``: which messages it answered). The rules are
:mod:`caducee.health.absences` and :mod:`caducee.health.auto_replies`'."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.database import insert_ignoring_conflicts
from caducee.store.tables import (
    absences,
    accounts,
    auto_reply_messages,
    auto_reply_senders,
    mailboxes,
)
from caducee.store.times import aware


@dataclass(frozen=True)
class AbsenceRow:
    account_id: int
    starts_on: date
    ends_on: date
    replacement_account_id: int | None
    message: str
    updated_at: datetime
    updated_by: str


def _absence(row: Any) -> AbsenceRow:
    return AbsenceRow(
        row.account_id,
        row.starts_on,
        row.ends_on,
        row.replacement_account_id,
        row.message,
        aware(row.updated_at),
        row.updated_by,
    )


async def absence_of(conn: AsyncConnection, account_id: int) -> AbsenceRow | None:
    row = (await conn.execute(select(absences).where(absences.c.account_id == account_id))).first()
    return _absence(row) if row is not None else None


async def current_absences(conn: AsyncConnection, today: date) -> list[tuple[int, AbsenceRow]]:
    """(personal mailbox id, absence) of every absence not yet over on ``today``: the personal
    mailbox of an account is the one whose address is its login."""
    query = (
        select(mailboxes.c.id.label("mailbox_id"), absences)
        .select_from(
            absences.join(accounts, accounts.c.id == absences.c.account_id).join(
                mailboxes,
                (mailboxes.c.owner_account_id == accounts.c.id)
                & (mailboxes.c.address == accounts.c.login),
            )
        )
        .where(absences.c.ends_on >= today)
    )
    return [(int(r.mailbox_id), _absence(r)) for r in (await conn.execute(query)).all()]


async def save_absence(
    conn: AsyncConnection,
    account_id: int,
    *,
    starts_on: date,
    ends_on: date,
    replacement_account_id: int | None,
    message: str,
    now: datetime,
    actor: str,
) -> None:
    values = {
        "starts_on": starts_on,
        "ends_on": ends_on,
        "replacement_account_id": replacement_account_id,
        "message": message,
        "updated_at": now,
        "updated_by": actor[:320],
    }
    changed = await conn.execute(
        update(absences).where(absences.c.account_id == account_id).values(**values)
    )
    if changed.rowcount == 0:
        await conn.execute(insert(absences).values(account_id=account_id, **values))


async def delete_absence(conn: AsyncConnection, account_id: int) -> bool:
    removed = await conn.execute(delete(absences).where(absences.c.account_id == account_id))
    return bool(removed.rowcount)


async def _insert_ignore(conn: AsyncConnection, table: Any, values: dict[str, object]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING: whether the row was inserted (told by RETURNING: the
    async PostgreSQL driver reports no row count for it)."""
    stmt = insert_ignoring_conflicts(conn, table, values)
    first = next(iter(table.primary_key.columns))
    return (await conn.execute(stmt.returning(first))).first() is not None


async def claim_message(
    conn: AsyncConnection, mailbox_id: int, message_key: str, kind: str, now: datetime
) -> bool:
    """Record that ``mailbox_id`` answers ``message_key``; False if it already did (atomic on
    both backends: the primary key decides)."""
    values = {"mailbox_id": mailbox_id, "message_key": message_key, "kind": kind, "sent_at": now}
    return await _insert_ignore(conn, auto_reply_messages, values)


async def claim_sender(
    conn: AsyncConnection,
    mailbox_id: int,
    sender_key: str,
    now: datetime,
    since: datetime | None,
) -> bool:
    """Record that ``mailbox_id`` answers ``sender_key`` at ``now``: True unless it already
    did at or after ``since`` (None: whenever it did, e.g. an urgent answer). Atomic on both
    backends: an insert that may not conflict, else an update conditioned on the last time."""
    values = {"mailbox_id": mailbox_id, "sender_key": sender_key, "last_at": now}
    if await _insert_ignore(conn, auto_reply_senders, values):
        return True
    where = (auto_reply_senders.c.mailbox_id == mailbox_id) & (
        auto_reply_senders.c.sender_key == sender_key
    )
    if since is not None:
        where = where & (auto_reply_senders.c.last_at < since)
    changed = await conn.execute(update(auto_reply_senders).where(where).values(last_at=now))
    return bool(changed.rowcount)


async def purge(conn: AsyncConnection, before: datetime) -> int:
    """Forget the answers older than ``before`` (they no longer hold anything back)."""
    senders = await conn.execute(
        delete(auto_reply_senders).where(auto_reply_senders.c.last_at < before)
    )
    messages = await conn.execute(
        delete(auto_reply_messages).where(auto_reply_messages.c.sent_at < before)
    )
    return int(senders.rowcount or 0) + int(messages.rowcount or 0)
