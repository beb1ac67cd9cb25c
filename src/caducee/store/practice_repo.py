"""SQL of a practice's settings for its patients (``patient_settings``: sensitive-data policy,
its term list, the patient-facing mailbox). The health layer parses and checks the values."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.tables import patient_settings


@dataclass(frozen=True)
class PatientSettingsRow:
    dlp_policy: str
    dlp_terms: str  # one term a line
    patient_mailbox_id: int | None
    patient_mailbox_open: bool


async def patient_settings_of(conn: AsyncConnection, practice_id: int) -> PatientSettingsRow | None:
    """The practice's settings, or None while it never saved any (the defaults apply)."""
    query = select(patient_settings).where(patient_settings.c.practice_id == practice_id)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return PatientSettingsRow(
        row.dlp_policy, row.dlp_terms, row.patient_mailbox_id, bool(row.patient_mailbox_open)
    )


async def save_patient_settings(
    conn: AsyncConnection, practice_id: int, settings: PatientSettingsRow
) -> None:
    """Insert or replace the practice's settings."""
    values = {
        "dlp_policy": settings.dlp_policy,
        "dlp_terms": settings.dlp_terms,
        "patient_mailbox_id": settings.patient_mailbox_id,
        "patient_mailbox_open": settings.patient_mailbox_open,
    }
    exists = await conn.scalar(
        select(patient_settings.c.practice_id).where(patient_settings.c.practice_id == practice_id)
    )
    if exists is None:
        await conn.execute(insert(patient_settings).values(practice_id=practice_id, **values))
    else:
        await conn.execute(
            update(patient_settings)
            .where(patient_settings.c.practice_id == practice_id)
            .values(**values)
        )
