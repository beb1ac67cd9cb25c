"""SQL of the secure pickup portal: ``pickups``, their events, one-time codes and portal
sessions. Pickups come back as :class:`caducee.domain.pickup.Pickup`, datetimes timezone-aware;
sealed columns stay sealed (the health layer opens them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.domain.pickup import Pickup, PickupEvent
from caducee.store import tokens
from caducee.store.tables import pickup_codes, pickup_events, pickup_sessions, pickups
from caducee.store.times import aware

# --- pickups ---------------------------------------------------------------------------------


def _pickup(row: Any) -> Pickup:
    return Pickup(
        id=row.id,
        practice_id=row.practice_id,
        sender_mailbox_id=row.sender_mailbox_id,
        patient_id=row.patient_id,
        record_id=row.record_id,
        blob_id=row.blob_id,
        size=row.size,
        trace_key=row.trace_key,
        has_passphrase=row.passphrase_hash is not None,
        failed_attempts=row.failed_attempts,
        created_at=aware(row.created_at),
        expires_at=aware(row.expires_at),
        revoked_at=aware(row.revoked_at),
        locked_at=aware(row.locked_at),
        purged_at=aware(row.purged_at),
    )


async def by_id(conn: AsyncConnection, pickup_id: int, *, lock: bool = False) -> Pickup | None:
    """A pickup; ``lock`` holds its row until the transaction ends (``FOR UPDATE``)."""
    query = select(pickups).where(pickups.c.id == pickup_id)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    return _pickup(row) if row is not None else None


async def by_link_token(conn: AsyncConnection, token: str) -> Pickup | None:
    """The pickup a link's token was issued for."""
    row = await tokens.row_by_token(conn, pickups.c.token_hash, token)
    return _pickup(row) if row is not None else None


async def insert_pickup(
    conn: AsyncConnection,
    *,
    practice_id: int,
    sender_mailbox_id: int,
    patient_id: int | None,
    token: str,
    record_id: str,
    contact_sealed: bytes,
    blob_id: str,
    size: int,
    trace_key: str | None,
    trace_recipient: tuple[str, bytes] | None,
    passphrase_hash: str | None,
    now: datetime,
    expires_at: datetime,
) -> Pickup:
    """A new pickup (only its link token's hash is kept)."""
    pickup_id = (
        await conn.execute(
            insert(pickups)
            .values(
                practice_id=practice_id,
                sender_mailbox_id=sender_mailbox_id,
                patient_id=patient_id,
                token_hash=tokens.token_digest(token),
                record_id=record_id,
                contact_sealed=contact_sealed,
                blob_id=blob_id,
                size=size,
                trace_key=trace_key,
                trace_recipient_key=trace_recipient[0] if trace_recipient else None,
                trace_recipient_sealed=trace_recipient[1] if trace_recipient else None,
                passphrase_hash=passphrase_hash,
                failed_attempts=0,
                created_at=now,
                expires_at=expires_at,
            )
            .returning(pickups.c.id)
        )
    ).scalar_one()
    created = await by_id(conn, pickup_id)
    assert created is not None
    return created


async def passphrase_hash(conn: AsyncConnection, pickup_id: int) -> str | None:
    value = await conn.scalar(select(pickups.c.passphrase_hash).where(pickups.c.id == pickup_id))
    return str(value) if value is not None else None


async def contact_sealed(conn: AsyncConnection, pickup_id: int) -> bytes | None:
    sealed = await conn.scalar(select(pickups.c.contact_sealed).where(pickups.c.id == pickup_id))
    return None if sealed is None else bytes(sealed)


async def trace_recipient(conn: AsyncConnection, pickup_id: int) -> tuple[str, bytes] | None:
    """The patient as the sender's trace names them (pseudonym, sealed address); None for a
    pickup made before migration 0019 and not converted yet."""
    row = (
        await conn.execute(
            select(pickups.c.trace_recipient_key, pickups.c.trace_recipient_sealed).where(
                pickups.c.id == pickup_id, pickups.c.trace_recipient_key.is_not(None)
            )
        )
    ).first()
    return None if row is None else (row.trace_recipient_key, bytes(row.trace_recipient_sealed))


async def without_trace_recipient(conn: AsyncConnection) -> list[Pickup]:
    """Traced pickups whose patient is not yet named as the trace names them (before 0019)."""
    rows = await conn.execute(
        select(pickups).where(
            pickups.c.trace_key.is_not(None), pickups.c.trace_recipient_key.is_(None)
        )
    )
    return [_pickup(row) for row in rows.all()]


async def set_trace_recipient(
    conn: AsyncConnection, pickup_id: int, key: str, sealed: bytes
) -> None:
    await conn.execute(
        update(pickups)
        .where(pickups.c.id == pickup_id)
        .values(trace_recipient_key=key, trace_recipient_sealed=sealed)
    )


async def set_failures(
    conn: AsyncConnection, pickup_id: int, failures: int, locked_at: datetime | None
) -> None:
    await conn.execute(
        update(pickups)
        .where(pickups.c.id == pickup_id)
        .values(failed_attempts=failures, locked_at=locked_at)
    )


async def mark_revoked(conn: AsyncConnection, pickup_id: int, now: datetime) -> None:
    """Revoked and purged: the content's blob is no longer referenced."""
    await conn.execute(
        update(pickups)
        .where(pickups.c.id == pickup_id)
        .values(revoked_at=now, blob_id=None, purged_at=now)
    )


async def mark_purged(conn: AsyncConnection, pickup_id: int, now: datetime) -> None:
    await conn.execute(
        update(pickups).where(pickups.c.id == pickup_id).values(blob_id=None, purged_at=now)
    )


async def ids(
    conn: AsyncConnection, *, mailbox_id: int | None = None, trace_key: str | None = None
) -> list[int]:
    """Pickup ids in order, of one sender mailbox and/or one traced message if given."""
    query = select(pickups.c.id).order_by(pickups.c.id)
    if mailbox_id is not None:
        query = query.where(pickups.c.sender_mailbox_id == mailbox_id)
    if trace_key is not None:
        query = query.where(pickups.c.trace_key == trace_key)
    return [int(i) for i in (await conn.scalars(query)).all()]


async def expired_with_content(conn: AsyncConnection, when: datetime) -> list[int]:
    query = select(pickups.c.id).where(pickups.c.expires_at <= when, pickups.c.blob_id.is_not(None))
    return [int(i) for i in (await conn.scalars(query)).all()]


# --- events ----------------------------------------------------------------------------------


async def insert_event(
    conn: AsyncConnection, pickup_id: int, event: str, detail: str, ts: datetime
) -> None:
    await conn.execute(
        insert(pickup_events).values(pickup_id=pickup_id, event=event, detail=detail, ts=ts)
    )


async def events(conn: AsyncConnection, pickup_id: int) -> list[PickupEvent]:
    rows = await conn.execute(
        select(pickup_events)
        .where(pickup_events.c.pickup_id == pickup_id)
        .order_by(pickup_events.c.ts, pickup_events.c.id)
    )
    return [PickupEvent(row.event, row.detail, aware(row.ts)) for row in rows]


# --- one-time codes --------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeRow:
    id: int
    code_hash: str
    expires_at: datetime


async def codes_since(conn: AsyncConnection, pickup_id: int, since: datetime) -> int:
    """How many codes were issued for the pickup after ``since``."""
    count = await conn.scalar(
        select(func.count())
        .select_from(pickup_codes)
        .where(pickup_codes.c.pickup_id == pickup_id, pickup_codes.c.created_at > since)
    )
    return int(count or 0)


async def replace_code(
    conn: AsyncConnection, pickup_id: int, code_hash: str, now: datetime, expires_at: datetime
) -> None:
    """A new code; the unused ones before it are superseded."""
    await conn.execute(
        update(pickup_codes)
        .where(pickup_codes.c.pickup_id == pickup_id, pickup_codes.c.used_at.is_(None))
        .values(superseded=True)
    )
    await conn.execute(
        insert(pickup_codes).values(
            pickup_id=pickup_id,
            code_hash=code_hash,
            created_at=now,
            expires_at=expires_at,
            superseded=False,
        )
    )


async def live_codes(conn: AsyncConnection, pickup_id: int) -> list[CodeRow]:
    """The pickup's codes neither used nor superseded (expired ones included)."""
    rows = await conn.execute(
        select(pickup_codes.c.id, pickup_codes.c.code_hash, pickup_codes.c.expires_at).where(
            pickup_codes.c.pickup_id == pickup_id,
            pickup_codes.c.used_at.is_(None),
            pickup_codes.c.superseded.is_(False),
        )
    )
    return [CodeRow(int(r.id), r.code_hash, aware(r.expires_at)) for r in rows.all()]


async def use_code(conn: AsyncConnection, code_id: int, now: datetime) -> None:
    await conn.execute(update(pickup_codes).where(pickup_codes.c.id == code_id).values(used_at=now))


# --- portal sessions -------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRow:
    id: int
    pickup_id: int
    csrf_token: str
    expires_at: datetime


async def insert_session(
    conn: AsyncConnection,
    pickup_id: int,
    token: str,
    csrf_token: str,
    now: datetime,
    expires_at: datetime,
) -> int:
    """A new portal session (only its cookie token's hash is kept); its id."""
    return int(
        (
            await conn.execute(
                insert(pickup_sessions)
                .values(
                    pickup_id=pickup_id,
                    token_hash=tokens.token_digest(token),
                    csrf_token=csrf_token,
                    created_at=now,
                    expires_at=expires_at,
                )
                .returning(pickup_sessions.c.id)
            )
        ).scalar_one()
    )


async def session_by_token(conn: AsyncConnection, token: str) -> SessionRow | None:
    row = await tokens.row_by_token(conn, pickup_sessions.c.token_hash, token)
    if row is None:
        return None
    return SessionRow(row.id, row.pickup_id, row.csrf_token, aware(row.expires_at))


async def delete_session(conn: AsyncConnection, session_id: int) -> None:
    await conn.execute(delete(pickup_sessions).where(pickup_sessions.c.id == session_id))


async def end_sessions(conn: AsyncConnection, pickup_id: int) -> None:
    """Every portal session of a pickup ends (locked or revoked link)."""
    await conn.execute(delete(pickup_sessions).where(pickup_sessions.c.pickup_id == pickup_id))


async def purge_stale(conn: AsyncConnection, when: datetime, codes_before: datetime) -> None:
    """Delete portal sessions expired at ``when`` and codes expired before ``codes_before``."""
    await conn.execute(delete(pickup_sessions).where(pickup_sessions.c.expires_at <= when))
    await conn.execute(delete(pickup_codes).where(pickup_codes.c.expires_at <= codes_before))


# --- a patient's pickups (RGPD: access and erasure, issue 19) ---------------------------------


async def ids_of_patient(conn: AsyncConnection, practice_id: int, patient_id: int) -> list[int]:
    """The pickups left for one patient of the practice's registry, oldest first."""
    query = (
        select(pickups.c.id)
        .where(pickups.c.practice_id == practice_id, pickups.c.patient_id == patient_id)
        .order_by(pickups.c.id)
    )
    return [int(i) for i in (await conn.scalars(query)).all()]


async def unlink_patient(conn: AsyncConnection, practice_id: int, patient_id: int) -> None:
    """The pickups of a patient removed from the registry no longer point to them (SQLite may
    give a later patient the same id: their export must not show another's pickups)."""
    await conn.execute(
        update(pickups)
        .where(pickups.c.practice_id == practice_id, pickups.c.patient_id == patient_id)
        .values(patient_id=None)
    )


async def erase_patient(conn: AsyncConnection, pickup_id: int, contact_sealed: bytes) -> None:
    """A pickup no longer names its patient: the contact replaced (``contact_sealed`` seals an
    empty one), the registry link cut, the one-time codes and portal sessions gone."""
    await conn.execute(
        update(pickups)
        .where(pickups.c.id == pickup_id)
        .values(contact_sealed=contact_sealed, patient_id=None, passphrase_hash=None)
    )
    await conn.execute(delete(pickup_codes).where(pickup_codes.c.pickup_id == pickup_id))
    await conn.execute(delete(pickup_sessions).where(pickup_sessions.c.pickup_id == pickup_id))
