"""SQL of the patient registry (``patients`` table)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.tables import patients


async def email_key_exists(conn: AsyncConnection, practice_id: int, email_key: str) -> bool:
    """Whether a patient of the practice has this keyed e-mail pseudonym."""
    found = await conn.scalar(
        select(patients.c.id)
        .where(patients.c.practice_id == practice_id, patients.c.email_key == email_key)
        .limit(1)
    )
    return found is not None
