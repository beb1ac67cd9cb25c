"""Set-based SQL for group commits: a whole group of deliveries in a handful of statements.

Rows are locked in id order (mailboxes, then folders) so that concurrent groups on several
nodes never deadlock. The statements of the write transaction are synchronous: the whole group
runs in one go (see ``Database.write_sync``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection
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


# Built once: a group commit then only binds values (building a statement costs more than
# running it on SQLite).
_LOCK_MAILBOXES = (
    select(
        mailboxes.c.id,
        mailboxes.c.address,
        mailboxes.c.used_bytes,
        mailboxes.c.quota_bytes,
        mailboxes.c.disabled,
    )
    .where(mailboxes.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(mailboxes.c.id)
    .with_for_update()
)
_LOCK_FOLDERS = (
    select(
        folders.c.id,
        folders.c.mailbox_id,
        folders.c.name,
        folders.c.uidnext,
        folders.c.highestmodseq,
    )
    .where(
        folders.c.mailbox_id.in_(bindparam("ids", expanding=True)),
        folders.c.name.in_(bindparam("names", expanding=True)),
    )
    .order_by(folders.c.id)
    .with_for_update()
)
_SAVE_FOLDERS = (
    update(folders)
    .where(folders.c.id == bindparam("fid"))
    .values(uidnext=bindparam("next_uid"), highestmodseq=bindparam("modseq"))
)
_ADD_USED_BYTES = (
    update(mailboxes)
    .where(mailboxes.c.id == bindparam("mid"))
    .values(used_bytes=mailboxes.c.used_bytes + bindparam("delta"))
)
_INSERT_MESSAGES = insert(messages)
_INSERT_MESSAGES_RETURNING = insert(messages).returning(messages.c.id, sort_by_parameter_order=True)
_LAST_MESSAGE_ID = select(func.max(messages.c.id))


def lock_mailboxes(conn: Connection, ids: Iterable[int]) -> dict[int, MailboxState]:
    rows = conn.execute(_LOCK_MAILBOXES, {"ids": sorted(set(ids))})
    return {
        row.id: MailboxState(
            row.id, row.address, row.used_bytes, row.quota_bytes, bool(row.disabled)
        )
        for row in rows
    }


def lock_folders(
    conn: Connection, mailbox_ids: Iterable[int], names: Iterable[str]
) -> dict[tuple[int, str], FolderState]:
    rows = conn.execute(
        _LOCK_FOLDERS, {"ids": sorted(set(mailbox_ids)), "names": sorted(set(names))}
    )
    return {
        (row.mailbox_id, row.name): FolderState(
            row.id, row.mailbox_id, row.name, row.uidnext, row.highestmodseq
        )
        for row in rows
    }


def insert_messages(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert many message rows; their ids, in the order given.

    SQLite: the ids are chosen here, as SQLite would (the largest plus one: the table has no
    AUTOINCREMENT), which the write lock held since BEGIN IMMEDIATE makes safe; the rows then go
    in as one ``executemany`` instead of one INSERT … RETURNING per row.
    """
    if not rows:
        return []
    if conn.dialect.name == "sqlite":
        first = int(conn.scalar(_LAST_MESSAGE_ID) or 0) + 1
        ids = list(range(first, first + len(rows)))
        conn.execute(_INSERT_MESSAGES, [{**row, "id": i} for row, i in zip(rows, ids, strict=True)])
        return ids
    result = conn.execute(_INSERT_MESSAGES_RETURNING, list(rows))
    return [row.id for row in result]


def save_folders(conn: Connection, changed: Sequence[FolderState]) -> None:
    if changed:
        conn.execute(
            _SAVE_FOLDERS,
            [{"fid": f.id, "next_uid": f.uidnext, "modseq": f.highestmodseq} for f in changed],
        )


def add_used_bytes(conn: Connection, deltas: dict[int, int]) -> None:
    if deltas:
        conn.execute(
            _ADD_USED_BYTES, [{"mid": mid, "delta": delta} for mid, delta in sorted(deltas.items())]
        )
