"""Set-based SQL for group commits: a whole group of deliveries in a handful of statements.

Rows are locked in id order (mailboxes, then folders) so that concurrent groups on several
nodes never deadlock. The statements of the write transaction are synchronous: the whole group
runs in one go (see ``Database.write_sync``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.batch_sql import insert_rows, update_rows
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
_INSERT_MESSAGES_RETURNING = insert(messages).returning(messages.c.id, sort_by_parameter_order=True)


# SQLite: both reads in one statement of one row (each row fetched is a step, and each step
# releases the interpreter lock: see ``batch_sql``); the ids and names come as JSON arrays so
# that the text never changes. The write lock is already held.
_SQLITE_GROUP_STATE = """
SELECT
  (SELECT json_group_array(json_array(id, address, used_bytes, quota_bytes, disabled))
     FROM mailboxes WHERE id IN (SELECT value FROM json_each(?))),
  (SELECT json_group_array(json_array(id, mailbox_id, name, uidnext, highestmodseq))
     FROM folders
     WHERE mailbox_id IN (SELECT value FROM json_each(?))
       AND name IN (SELECT value FROM json_each(?)))
"""


def lock_group_state(
    conn: Connection, mailbox_ids: Iterable[int], names: Iterable[str]
) -> tuple[dict[int, MailboxState], dict[tuple[int, str], FolderState]]:
    """The mailboxes and their folders ``names`` a group writes to, locked until the commit
    (PostgreSQL: FOR UPDATE, mailboxes first, in id order; SQLite: its write lock)."""
    params = {"ids": sorted(set(mailbox_ids)), "names": sorted(set(names))}
    if conn.dialect.name == "sqlite":
        ids = json.dumps(params["ids"])
        row = conn.exec_driver_sql(
            _SQLITE_GROUP_STATE, (ids, ids, json.dumps(params["names"]))
        ).one()
        box_rows = json.loads(row[0] or "[]")
        folder_rows = json.loads(row[1] or "[]")
    else:
        box_rows = [tuple(r) for r in conn.execute(_LOCK_MAILBOXES, {"ids": params["ids"]})]
        folder_rows = [tuple(r) for r in conn.execute(_LOCK_FOLDERS, params)]
    boxes = {
        r[0]: MailboxState(int(r[0]), str(r[1]), int(r[2]), int(r[3]), bool(r[4])) for r in box_rows
    }
    group_folders = {
        (int(r[1]), str(r[2])): FolderState(int(r[0]), int(r[1]), str(r[2]), int(r[3]), int(r[4]))
        for r in folder_rows
        if r[1] in boxes
    }
    return boxes, group_folders


def insert_messages(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert many message rows; their ids, in the order given.

    SQLite: the ids are chosen here, as SQLite would (the largest plus one: the table has no
    AUTOINCREMENT), which the write lock held since BEGIN IMMEDIATE makes safe; the rows then go
    in as one multi-row INSERT (``batch_sql``) instead of one INSERT … RETURNING per row.
    """
    if not rows:
        return []
    if conn.dialect.name == "sqlite":
        first = int(conn.exec_driver_sql("SELECT max(id) FROM messages").scalar() or 0) + 1
        ids = list(range(first, first + len(rows)))
        insert_rows(conn, messages, [{**row, "id": i} for row, i in zip(rows, ids, strict=True)])
        return ids
    result = conn.execute(_INSERT_MESSAGES_RETURNING, list(rows))
    return [row.id for row in result]


def save_folders(conn: Connection, changed: Sequence[FolderState]) -> None:
    update_rows(
        conn,
        folders,
        "id",
        {f.id: {"uidnext": f.uidnext, "highestmodseq": f.highestmodseq} for f in changed},
    )


def add_used_bytes(conn: Connection, deltas: dict[int, int]) -> None:
    update_rows(
        conn,
        mailboxes,
        "id",
        {mid: {"used_bytes": delta} for mid, delta in deltas.items()},
        add=True,
    )
