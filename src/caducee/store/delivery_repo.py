"""Set-based SQL for group commits: a whole group of deliveries in a handful of statements.

Rows are locked in id order (mailboxes, then folders) so that concurrent groups on several
nodes never deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.tables import folders, mailboxes, messages


@dataclass
class MailboxState:
    id: int
    address: str
    used_bytes: int
    quota_bytes: int
    disabled: bool


@dataclass
class FolderState:
    id: int
    mailbox_id: int
    name: str
    uidnext: int
    highestmodseq: int


async def mailbox_ids_by_address(
    conn: AsyncConnection, addresses: Iterable[str]
) -> dict[str, tuple[int, bool]]:
    wanted = sorted(set(addresses))
    if not wanted:
        return {}
    rows = await conn.execute(
        select(mailboxes.c.address, mailboxes.c.id, mailboxes.c.disabled).where(
            mailboxes.c.address.in_(wanted)
        )
    )
    return {row.address: (row.id, bool(row.disabled)) for row in rows}


async def lock_mailboxes(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, MailboxState]:
    rows = await conn.execute(
        select(
            mailboxes.c.id,
            mailboxes.c.address,
            mailboxes.c.used_bytes,
            mailboxes.c.quota_bytes,
            mailboxes.c.disabled,
        )
        .where(mailboxes.c.id.in_(sorted(set(ids))))
        .order_by(mailboxes.c.id)
        .with_for_update()
    )
    return {
        row.id: MailboxState(
            row.id, row.address, row.used_bytes, row.quota_bytes, bool(row.disabled)
        )
        for row in rows
    }


async def lock_folders(
    conn: AsyncConnection, mailbox_ids: Iterable[int], names: Iterable[str]
) -> dict[tuple[int, str], FolderState]:
    rows = await conn.execute(
        select(
            folders.c.id,
            folders.c.mailbox_id,
            folders.c.name,
            folders.c.uidnext,
            folders.c.highestmodseq,
        )
        .where(folders.c.mailbox_id.in_(sorted(set(mailbox_ids))), folders.c.name.in_(set(names)))
        .order_by(folders.c.id)
        .with_for_update()
    )
    return {
        (row.mailbox_id, row.name): FolderState(
            row.id, row.mailbox_id, row.name, row.uidnext, row.highestmodseq
        )
        for row in rows
    }


async def insert_messages(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert many message rows; their ids, in the order given."""
    if not rows:
        return []
    result = await conn.execute(
        insert(messages).returning(messages.c.id, sort_by_parameter_order=True), list(rows)
    )
    return [row.id for row in result]


async def save_folders(conn: AsyncConnection, changed: Sequence[FolderState]) -> None:
    if changed:
        await conn.execute(
            update(folders)
            .where(folders.c.id == bindparam("fid"))
            .values(uidnext=bindparam("next_uid"), highestmodseq=bindparam("modseq")),
            [{"fid": f.id, "next_uid": f.uidnext, "modseq": f.highestmodseq} for f in changed],
        )


async def add_used_bytes(conn: AsyncConnection, deltas: dict[int, int]) -> None:
    if deltas:
        await conn.execute(
            update(mailboxes)
            .where(mailboxes.c.id == bindparam("mid"))
            .values(used_bytes=mailboxes.c.used_bytes + bindparam("delta")),
            [{"mid": mid, "delta": delta} for mid, delta in sorted(deltas.items())],
        )
