"""SQL of the practices' triage settings (``practice_triage``): one row per practice, its
settings as JSON text. The health layer parses and checks them
(:mod:`caducee.health.patient_triage`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.tables import practice_triage as triage


async def settings_text(conn: AsyncConnection, practice_id: int) -> str | None:
    """The stored JSON of a practice's triage settings, or None when it saved none."""
    found = await conn.execute(select(triage.c.settings).where(triage.c.practice_id == practice_id))
    value = found.scalar_one_or_none()
    return str(value) if value is not None else None


async def save_settings(
    conn: AsyncConnection, practice_id: int, settings: str, *, now: datetime, actor: str
) -> None:
    """Insert or replace a practice's triage settings."""
    values = {"settings": settings, "updated_at": now, "updated_by": actor[:320]}
    changed = await conn.execute(
        update(triage).where(triage.c.practice_id == practice_id).values(**values)
    )
    if changed.rowcount == 0:
        await conn.execute(insert(triage).values(practice_id=practice_id, **values))
