"""SQL of the practice's address books (``contacts``): a contact's name and address are sealed
per practice; an address is found by its keyed pseudonym (``email_key``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.tables import contacts


@dataclass(frozen=True)
class ContactRow:
    id: int
    kind: str
    ref: str
    sealed: bytes


async def kind_of(conn: AsyncConnection, practice_id: int, email_key: str) -> str | None:
    """The book ("pro", "patient") holding the address with this pseudonym, if any."""
    kind = await conn.scalar(
        select(contacts.c.kind).where(
            contacts.c.practice_id == practice_id, contacts.c.email_key == email_key
        )
    )
    return str(kind) if kind is not None else None


async def insert_contact(
    conn: AsyncConnection,
    *,
    practice_id: int,
    kind: str,
    ref: str,
    email_key: str,
    sealed: bytes,
    now: datetime,
) -> int | None:
    """The new contact's id; None if the practice already has this address (the transaction
    must then be abandoned)."""
    try:
        result = await conn.execute(
            insert(contacts)
            .values(
                practice_id=practice_id,
                kind=kind,
                ref=ref,
                email_key=email_key,
                sealed=sealed,
                created_at=now,
            )
            .returning(contacts.c.id)
        )
    except SqlIntegrityError:
        return None
    return int(result.scalar_one())


async def contacts_of(conn: AsyncConnection, practice_id: int, kind: str) -> list[ContactRow]:
    rows = await conn.execute(
        select(contacts).where(contacts.c.practice_id == practice_id, contacts.c.kind == kind)
    )
    return [ContactRow(r.id, r.kind, r.ref, bytes(r.sealed)) for r in rows.all()]


async def delete_contact(conn: AsyncConnection, practice_id: int, contact_id: int) -> bool:
    """Delete one contact of the practice; whether there was one."""
    result = await conn.execute(
        delete(contacts).where(contacts.c.id == contact_id, contacts.c.practice_id == practice_id)
    )
    return bool(result.rowcount)


async def delete_by_email_key(conn: AsyncConnection, practice_id: int, email_key: str) -> int:
    """Delete the practice's contact with this keyed e-mail pseudonym; how many went."""
    result = await conn.execute(
        delete(contacts).where(
            contacts.c.practice_id == practice_id, contacts.c.email_key == email_key
        )
    )
    return int(result.rowcount or 0)
