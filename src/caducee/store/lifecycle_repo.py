"""SQL of a mailbox's deletion (issue 19): crypto-shredding first, then its rows in batches.

:func:`mark_deleted` destroys the mailbox's data key (its ``data_keys`` row) in the same
transaction that marks the mailbox deleted, so every blob and sealed field of it is unreadable
from that commit on. :func:`delete_messages_batch` and :func:`delete_rows_batch` then remove its
rows a batch at a time (a big mailbox never holds one huge transaction), children before
parents, and :func:`delete_mailbox_row` removes what is left and the mailbox itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.keyring import mailbox_scope
from caducee.store.mailstore_repo import unreferenced_blobs
from caducee.store.tables import (
    absences,
    accounts,
    api_tokens,
    app_passwords,
    auto_reply_messages,
    auto_reply_senders,
    data_keys,
    delegations,
    folders,
    imap_expunge_horizon,
    imap_expunged,
    imap_folder_state,
    imap_mailbox_state,
    imap_subscriptions,
    mailbox_inactivity,
    mailbox_settings,
    mailboxes,
    message_text_index,
    message_trace,
    messages,
    patient_settings,
    pickup_codes,
    pickup_events,
    pickup_sessions,
    pickups,
    practice_charters,
    tlt_lots,
    tlt_returns,
    web_recovery_codes,
    web_sessions,
    webauthn_credentials,
)


async def deleted_at(conn: AsyncConnection, mailbox_id: int) -> datetime | None:
    value = await conn.scalar(select(mailboxes.c.deleted_at).where(mailboxes.c.id == mailbox_id))
    return value if isinstance(value, datetime) else None


async def being_deleted(conn: AsyncConnection) -> list[int]:
    """Mailboxes whose deletion began and did not finish (a crash, a stopped node)."""
    rows = await conn.execute(select(mailboxes.c.id).where(mailboxes.c.deleted_at.is_not(None)))
    return [int(row.id) for row in rows]


async def mark_deleted(conn: AsyncConnection, mailbox_id: int, now: datetime) -> None:
    """Destroy the data key and mark the mailbox deleted (and disabled), in one transaction."""
    await conn.execute(delete(data_keys).where(data_keys.c.scope == mailbox_scope(mailbox_id)))
    await conn.execute(
        update(mailboxes).where(mailboxes.c.id == mailbox_id).values(disabled=True, deleted_at=now)
    )


async def has_data_key(conn: AsyncConnection, mailbox_id: int) -> bool:
    scope = mailbox_scope(mailbox_id)
    return (await conn.scalar(select(func.count()).where(data_keys.c.scope == scope)) or 0) > 0


async def latest_lot(conn: AsyncConnection, mailbox_id: int) -> datetime | None:
    """When the mailbox's newest télétransmission lot or return was sent or received."""
    lot = await conn.scalar(
        select(func.max(tlt_lots.c.sent_at)).where(tlt_lots.c.mailbox_id == mailbox_id)
    )
    ret = await conn.scalar(
        select(func.max(tlt_returns.c.received_at)).where(tlt_returns.c.mailbox_id == mailbox_id)
    )
    found = [value for value in (lot, ret) if isinstance(value, datetime)]
    return max(found) if found else None


async def folder_ids(conn: AsyncConnection, mailbox_id: int) -> list[int]:
    rows = await conn.execute(select(folders.c.id).where(folders.c.mailbox_id == mailbox_id))
    return [int(row.id) for row in rows]


async def count_messages(conn: AsyncConnection, mailbox_id: int) -> int:
    count = await conn.scalar(
        select(func.count()).select_from(messages).where(messages.c.mailbox_id == mailbox_id)
    )
    return int(count or 0)


async def delete_messages_batch(
    conn: AsyncConnection, mailbox_id: int, batch: int
) -> tuple[int, list[str]]:
    """Remove up to ``batch`` messages of the mailbox (and their search filters): how many,
    and the blobs no remaining message names (for the blob store to forget)."""
    rows = (
        await conn.execute(
            select(messages.c.id, messages.c.blob_id)
            .where(messages.c.mailbox_id == mailbox_id)
            .order_by(messages.c.id)
            .limit(batch)
        )
    ).all()
    if not rows:
        return 0, []
    ids = [int(row.id) for row in rows]
    await conn.execute(delete(message_text_index).where(message_text_index.c.message_id.in_(ids)))
    await conn.execute(delete(messages).where(messages.c.id.in_(ids)))
    return len(ids), await unreferenced_blobs(conn, [str(row.blob_id) for row in rows])


async def delete_trace_batch(conn: AsyncConnection, mailbox_id: int, batch: int) -> int:
    """Remove up to ``batch`` rows of the mailbox's sender trace: how many."""
    chosen = select(message_trace.c.id).where(message_trace.c.mailbox_id == mailbox_id)
    ids = [row.id for row in await conn.execute(chosen.limit(batch))]
    if ids:
        await conn.execute(delete(message_trace).where(message_trace.c.id.in_(ids)))
    return len(ids)


async def delete_mailbox_row(conn: AsyncConnection, mailbox_id: int) -> list[str]:
    """Remove every remaining row naming the mailbox, then the mailbox (its messages and trace
    are gone already): returns the blobs of its pickups, for the blob store to forget."""
    folders_of = await folder_ids(conn, mailbox_id)
    pickup_rows = (
        await conn.execute(
            select(pickups.c.id, pickups.c.blob_id).where(pickups.c.sender_mailbox_id == mailbox_id)
        )
    ).all()
    pickup_ids = [int(row.id) for row in pickup_rows]
    if pickup_ids:
        for child in (pickup_codes, pickup_events, pickup_sessions):
            await conn.execute(delete(child).where(child.c.pickup_id.in_(pickup_ids)))
        await conn.execute(delete(pickups).where(pickups.c.id.in_(pickup_ids)))
    if folders_of:
        for table in (imap_expunged, imap_folder_state, imap_expunge_horizon):
            await conn.execute(delete(table).where(table.c.folder_id.in_(folders_of)))
    await conn.execute(delete(tlt_returns).where(tlt_returns.c.mailbox_id == mailbox_id))
    await conn.execute(delete(tlt_lots).where(tlt_lots.c.mailbox_id == mailbox_id))
    for table in (
        imap_mailbox_state,
        mailbox_inactivity,
        mailbox_settings,
        auto_reply_senders,
        auto_reply_messages,
        delegations,
        app_passwords,
        message_trace,
        messages,
        folders,
    ):
        await conn.execute(delete(table).where(table.c.mailbox_id == mailbox_id))
    await conn.execute(
        update(patient_settings)
        .where(patient_settings.c.patient_mailbox_id == mailbox_id)
        .values(patient_mailbox_id=None)
    )
    await _drop_from_tokens(conn, mailbox_id)
    await conn.execute(delete(data_keys).where(data_keys.c.scope == mailbox_scope(mailbox_id)))
    await conn.execute(delete(mailboxes).where(mailboxes.c.id == mailbox_id))
    return [str(row.blob_id) for row in pickup_rows if row.blob_id]


async def _drop_from_tokens(conn: AsyncConnection, mailbox_id: int) -> None:
    """API tokens name their mailboxes in a list: the deleted one leaves it (a token left with
    none is revoked by :func:`api_tokens.authenticate`'s access check, mailbox by mailbox)."""
    rows = await conn.execute(
        select(api_tokens.c.id, api_tokens.c.mailbox_ids).where(
            api_tokens.c.mailbox_ids.like(f"%{mailbox_id}%")
        )
    )
    for row in rows.all():
        ids = [part for part in str(row.mailbox_ids).split(",") if part.strip()]
        kept = [part for part in ids if part.strip() != str(mailbox_id)]
        if kept != ids:
            await conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == row.id)
                .values(mailbox_ids=",".join(kept))
            )


async def referencing_rows(conn: AsyncConnection, mailbox_id: int) -> dict[str, int]:
    """How many rows of each table still name the mailbox (a test's and an operator's check)."""
    counts: dict[str, int] = {}
    for table, column in _MAILBOX_COLUMNS:
        count = await conn.scalar(
            select(func.count()).select_from(table).where(column == mailbox_id)
        )
        if count:
            counts[table.name] = int(count)
    scope = mailbox_scope(mailbox_id)
    if await conn.scalar(
        select(func.count()).select_from(data_keys).where(data_keys.c.scope == scope)
    ):
        counts["data_keys"] = 1
    return counts


_MAILBOX_COLUMNS: Sequence[tuple[Table, Any]] = (
    (mailboxes, mailboxes.c.id),
    (messages, messages.c.mailbox_id),
    (folders, folders.c.mailbox_id),
    (delegations, delegations.c.mailbox_id),
    (app_passwords, app_passwords.c.mailbox_id),
    (message_trace, message_trace.c.mailbox_id),
    (mailbox_settings, mailbox_settings.c.mailbox_id),
    (imap_mailbox_state, imap_mailbox_state.c.mailbox_id),
    (mailbox_inactivity, mailbox_inactivity.c.mailbox_id),
    (pickups, pickups.c.sender_mailbox_id),
    (tlt_lots, tlt_lots.c.mailbox_id),
    (tlt_returns, tlt_returns.c.mailbox_id),
    (auto_reply_senders, auto_reply_senders.c.mailbox_id),
    (auto_reply_messages, auto_reply_messages.c.mailbox_id),
    (patient_settings, patient_settings.c.patient_mailbox_id),
)


async def delete_account_rows(conn: AsyncConnection, account_id: int) -> None:
    """Remove an account and what is only its own (web sessions, second factors, app
    passwords, API tokens, delegations it holds, its absence, its charter row, its IMAP
    subscriptions); the grants it made and the absences naming it as replacement stay,
    without it. Its mailboxes are gone already (the caller deleted them)."""
    for table in (
        web_sessions,
        web_recovery_codes,
        webauthn_credentials,
        imap_subscriptions,
        app_passwords,
        api_tokens,
        delegations,
        absences,
        practice_charters,
    ):
        await conn.execute(delete(table).where(table.c.account_id == account_id))
    await conn.execute(
        update(delegations).where(delegations.c.granted_by == account_id).values(granted_by=None)
    )
    await conn.execute(
        update(absences)
        .where(absences.c.replacement_account_id == account_id)
        .values(replacement_account_id=None)
    )
    await conn.execute(delete(accounts).where(accounts.c.id == account_id))


async def other_admins(conn: AsyncConnection, practice_id: int, account_id: int) -> int:
    """How many enabled administrators of the practice there are besides ``account_id``."""
    count = await conn.scalar(
        select(func.count())
        .select_from(accounts)
        .where(
            accounts.c.practice_id == practice_id,
            accounts.c.role == "admin",
            accounts.c.id != account_id,
            accounts.c.disabled.is_(False),
        )
    )
    return int(count or 0)
