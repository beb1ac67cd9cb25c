"""SQL of the patient registry (``patients`` table). Rows come back as :class:`PatientRow`
(the sealed fields still sealed), datetimes timezone-aware."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store import tokens
from caducee.store.tables import patients
from caducee.store.times import aware


@dataclass(frozen=True)
class PatientRow:
    id: int
    practice_id: int
    ref: str
    sealed: bytes
    delivery_mode: str
    shared_address: bool
    address_status: str
    verified_at: datetime | None
    verify_expires_at: datetime | None


def _row(row: Any) -> PatientRow:
    return PatientRow(
        id=int(row.id),
        practice_id=int(row.practice_id),
        ref=row.ref,
        sealed=bytes(row.sealed),
        delivery_mode=row.delivery_mode,
        shared_address=bool(row.shared_address),
        address_status=row.address_status,
        verified_at=aware(row.verified_at),
        verify_expires_at=aware(row.verify_expires_at),
    )


async def email_key_exists(conn: AsyncConnection, practice_id: int, email_key: str) -> bool:
    """Whether a patient of the practice has this keyed e-mail pseudonym."""
    return await id_by_email_key(conn, practice_id, email_key) is not None


async def id_by_email_key(conn: AsyncConnection, practice_id: int, email_key: str) -> int | None:
    """The id of the practice's patient with this keyed e-mail pseudonym."""
    found = await conn.scalar(
        select(patients.c.id)
        .where(patients.c.practice_id == practice_id, patients.c.email_key == email_key)
        .limit(1)
    )
    return None if found is None else int(found)


async def by_email_key(
    conn: AsyncConnection, practice_id: int, email_key: str
) -> PatientRow | None:
    row = (
        await conn.execute(
            select(patients).where(
                patients.c.practice_id == practice_id, patients.c.email_key == email_key
            )
        )
    ).first()
    return _row(row) if row is not None else None


async def by_id(conn: AsyncConnection, practice_id: int, patient_id: int) -> PatientRow | None:
    row = (
        await conn.execute(
            select(patients).where(
                patients.c.id == patient_id, patients.c.practice_id == practice_id
            )
        )
    ).first()
    return _row(row) if row is not None else None


async def of_practice(conn: AsyncConnection, practice_id: int) -> list[PatientRow]:
    rows = await conn.execute(select(patients).where(patients.c.practice_id == practice_id))
    return [_row(row) for row in rows.all()]


async def insert_patient(
    conn: AsyncConnection,
    *,
    practice_id: int,
    ref: str,
    sealed: bytes,
    email_key: str,
    delivery_mode: str,
    shared_address: bool,
    now: datetime,
) -> int | None:
    """A new, unverified patient's id; None if the practice already has this e-mail key (the
    transaction must then be abandoned)."""
    try:
        return int(
            (
                await conn.execute(
                    insert(patients)
                    .values(
                        practice_id=practice_id,
                        ref=ref,
                        sealed=sealed,
                        email_key=email_key,
                        delivery_mode=delivery_mode,
                        shared_address=shared_address,
                        address_status="unverified",
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(patients.c.id)
                )
            ).scalar_one()
        )
    except SqlIntegrityError:
        return None


async def update_patient(
    conn: AsyncConnection,
    patient_id: int,
    *,
    ref: str,
    sealed: bytes,
    email_key: str,
    delivery_mode: str,
    shared_address: bool,
    address_status: str,
    now: datetime,
    forget_verification: bool,
) -> None:
    """Rewrite a patient's sealed fields; ``forget_verification`` clears a pending link and the
    verification date (a new address)."""
    values: dict[str, object] = {
        "ref": ref,
        "sealed": sealed,
        "email_key": email_key,
        "delivery_mode": delivery_mode,
        "shared_address": shared_address,
        "address_status": address_status,
        "updated_at": now,
    }
    if forget_verification:
        values.update(verify_token_hash=None, verify_expires_at=None, verified_at=None)
    await conn.execute(update(patients).where(patients.c.id == patient_id).values(**values))


async def delete_patient(conn: AsyncConnection, patient_id: int) -> None:
    await conn.execute(delete(patients).where(patients.c.id == patient_id))


async def start_verification(
    conn: AsyncConnection,
    patient_id: int,
    token: str,
    *,
    expires_at: datetime,
    address_status: str,
    now: datetime,
) -> None:
    """Keep the hash of a new verification link (replacing any earlier one)."""
    await conn.execute(
        update(patients)
        .where(patients.c.id == patient_id)
        .values(
            verify_token_hash=tokens.token_digest(token),
            verify_expires_at=expires_at,
            address_status=address_status,
            updated_at=now,
        )
    )


async def by_verification_token(conn: AsyncConnection, token: str) -> PatientRow | None:
    """The patient a verification link's token was issued for (expired or not)."""
    row = await tokens.row_by_token(conn, patients.c.verify_token_hash, token)
    return _row(row) if row is not None else None


async def mark_verified(conn: AsyncConnection, patient_id: int, token: str, now: datetime) -> None:
    """The address is verified; the link, if still the patient's, is used up."""
    await conn.execute(
        update(patients)
        .where(
            patients.c.id == patient_id,
            patients.c.verify_token_hash == tokens.token_digest(token),
        )
        .values(
            address_status="verified",
            verified_at=now,
            verify_token_hash=None,
            verify_expires_at=None,
            updated_at=now,
        )
    )
