"""SQL of the practices' charters (``practice_charters``): the practice-wide row and the
practitioners' overrides, their settings as JSON text. The health layer parses and checks
them (:mod:`caducee.health.charter`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.tables import practice_charters as charters
from caducee.store.times import aware


@dataclass(frozen=True)
class CharterRow:
    practice_id: int
    account_id: int | None  # None: the practice-wide charter
    settings: str
    updated_at: datetime
    updated_by: str


def _where(practice_id: int, account_id: int | None) -> ColumnElement[bool]:
    account = (
        charters.c.account_id.is_(None)
        if account_id is None
        else charters.c.account_id == account_id
    )
    return (charters.c.practice_id == practice_id) & account


async def charter_rows(
    conn: AsyncConnection, practice_id: int, account_id: int | None = None
) -> list[CharterRow]:
    """The practice-wide row and, with ``account_id``, that practitioner's (either may be
    missing): practice-wide first."""
    wanted: ColumnElement[bool] = charters.c.account_id.is_(None)
    if account_id is not None:
        wanted = wanted | (charters.c.account_id == account_id)
    query = (
        select(charters)
        .where((charters.c.practice_id == practice_id) & wanted)
        .order_by(charters.c.account_id.is_not(None), charters.c.id)
    )
    return [
        CharterRow(r.practice_id, r.account_id, r.settings, aware(r.updated_at), r.updated_by)
        for r in (await conn.execute(query)).all()
    ]


async def overriding_accounts(conn: AsyncConnection, practice_id: int) -> list[int]:
    """The accounts of the practice that have their own charter."""
    query = (
        select(charters.c.account_id)
        .where((charters.c.practice_id == practice_id) & charters.c.account_id.is_not(None))
        .order_by(charters.c.account_id)
    )
    return [int(a) for a in (await conn.execute(query)).scalars()]


async def save_charter(
    conn: AsyncConnection,
    practice_id: int,
    account_id: int | None,
    settings: str,
    *,
    now: datetime,
    actor: str,
) -> None:
    """Insert or replace the practice-wide charter (``account_id`` None) or an override."""
    values = {"settings": settings, "updated_at": now, "updated_by": actor[:320]}
    changed = await conn.execute(
        update(charters).where(_where(practice_id, account_id)).values(**values)
    )
    if changed.rowcount == 0:
        await conn.execute(
            insert(charters).values(practice_id=practice_id, account_id=account_id, **values)
        )


async def delete_charter(conn: AsyncConnection, practice_id: int, account_id: int | None) -> bool:
    """Remove a saved charter (back to the practice's, or to the defaults); True if one was."""
    removed = await conn.execute(delete(charters).where(_where(practice_id, account_id)))
    return bool(removed.rowcount)
