"""SQL for messages in folders (clear columns only; sealing is the service's job)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.database import inserted_id
from caducee.store.tables import messages


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
