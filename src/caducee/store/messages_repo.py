"""SQL for messages in folders (clear columns only; sealing is the service's job)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.database import inserted_id
from caducee.store.tables import folders, mailboxes, messages


async def insert_message(
    conn: AsyncConnection,
    *,
    mailbox_id: int,
    folder_id: int,
    uid: int,
    modseq: int,
    flags: int,
    keywords: str,
    internal_date: datetime,
    size: int,
    blob_id: str,
    meta_sealed: bytes,
) -> int:
    result = await conn.execute(
        insert(messages).values(
            mailbox_id=mailbox_id,
            folder_id=folder_id,
            uid=uid,
            modseq=modseq,
            flags=flags,
            keywords=keywords,
            internal_date=internal_date,
            size=size,
            blob_id=blob_id,
            meta_sealed=meta_sealed,
        )
    )
    return inserted_id(result)


async def message_row(conn: AsyncConnection, message_id: int) -> Any:
    return (await conn.execute(select(messages).where(messages.c.id == message_id))).first()


async def folder_message_rows(conn: AsyncConnection, folder_id: int) -> list[Any]:
    query = select(messages).where(messages.c.folder_id == folder_id).order_by(messages.c.uid)
    return list((await conn.execute(query)).all())


async def delete_messages(
    conn: AsyncConnection, folder_id: int, message_ids: list[int]
) -> list[tuple[int, int, str]]:
    """Delete messages of a folder; (mailbox id, size, blob id) of each one deleted.

    The folder's HIGHESTMODSEQ moves on (RFC 7162 §3.2.10: an expunge is a change) and the
    mailboxes' used bytes go down.
    """
    await conn.execute(select(folders.c.id).where(folders.c.id == folder_id).with_for_update())
    rows = (
        await conn.execute(
            select(messages.c.id, messages.c.mailbox_id, messages.c.size, messages.c.blob_id).where(
                messages.c.folder_id == folder_id, messages.c.id.in_(message_ids)
            )
        )
    ).all()
    if not rows:
        return []
    await conn.execute(delete(messages).where(messages.c.id.in_([r.id for r in rows])))
    await conn.execute(
        update(folders)
        .where(folders.c.id == folder_id)
        .values(highestmodseq=folders.c.highestmodseq + 1)
    )
    freed: dict[int, int] = {}
    for row in rows:
        freed[row.mailbox_id] = freed.get(row.mailbox_id, 0) + row.size
    await conn.execute(
        update(mailboxes)
        .where(mailboxes.c.id == bindparam("mid"))
        .values(used_bytes=mailboxes.c.used_bytes - bindparam("freed")),
        [{"mid": mid, "freed": size} for mid, size in freed.items()],
    )
    return [(row.mailbox_id, row.size, row.blob_id) for row in rows]
