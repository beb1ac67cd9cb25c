"""The SQL of the outbound queue (tables ``outbound_messages`` and ``outbound_recipients``).

Claims: a worker takes due rows with ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL; on SQLite
the same select runs inside the ``BEGIN IMMEDIATE`` write transaction, which already excludes
other writers) and stamps them with a lease (``lease_owner``, ``lease_until``) before it commits.
The lease, not the row lock, protects the row while the SMTP session runs outside any
transaction: no other worker claims a leased row until the lease expires (a crashed node's rows
come back after that). Every later update names the lease owner, so a worker whose lease was
lost cannot overwrite what another one recorded.

Addresses: a recipient's address (and its ORCPT, which repeats it) stays in clear while the
recipient waits for delivery — it routes the mail. When the recipient becomes final (delivered,
bounced, expired), :func:`conceal` moves both into ``address_sealed`` in the same transaction
(sealed with the ``queue`` data key, record ``recipient:<row id>``, field ``address``, with the
last reply as received) and hides the address in the last reply left in clear; :func:`reveal`
opens them for ``caducee queue list``, the admin queue page and the delivery reports.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.domain.addresses import hide_address
from caducee.store.database import inserted_id
from caducee.store.keyring import Keyring
from caducee.store.tables import data_keys, outbound_messages, outbound_recipients
from caducee.store.times import aware

QUEUED = "queued"
DEFERRED = "deferred"
DELIVERED = "delivered"
BOUNCED = "bounced"
EXPIRED = "expired"
#: States in which a recipient still waits for a delivery attempt.
ACTIVE = (QUEUED, DEFERRED)
FINAL = (DELIVERED, BOUNCED, EXPIRED)
#: The data key sealing queued messages and finished recipients' addresses.
QUEUE_SCOPE = "queue"

m = outbound_messages
r = outbound_recipients


@dataclass(frozen=True)
class QueueRow:
    """One recipient of one queued message, with its message's envelope."""

    id: int
    message_id: int
    address: str
    domain: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_code: int | None
    last_status: str | None
    last_reply: str | None
    remote_mta: str | None
    notify: tuple[str, ...]  # as given by the client; empty = not given
    orcpt: str | None
    delay_notified: bool
    report: str
    finished_at: datetime | None
    # the message
    mail_from: str
    envid: str | None
    ret: str | None
    size: int
    blob_id: str | None
    origin: str
    created_at: datetime
    origin_mailbox_id: int | None = None
    #: set once the recipient is final (``address`` and ``orcpt`` are then empty until
    #: :func:`reveal`)
    address_sealed: bytes | None = None


_COLUMNS = (
    r.c.id,
    r.c.message_id,
    r.c.address,
    r.c.domain,
    r.c.state,
    r.c.attempts,
    r.c.next_attempt_at,
    r.c.last_attempt_at,
    r.c.last_code,
    r.c.last_status,
    r.c.last_reply,
    r.c.remote_mta,
    r.c.notify,
    r.c.orcpt,
    r.c.delay_notified,
    r.c.report,
    r.c.finished_at,
    m.c.mail_from,
    m.c.envid,
    m.c.ret,
    m.c.size,
    m.c.blob_id,
    m.c.origin,
    m.c.created_at,
    m.c.origin_mailbox_id,
    r.c.address_sealed,
)


def _row(row: Any) -> QueueRow:
    return QueueRow(
        id=int(row.id),
        message_id=int(row.message_id),
        address=row.address,
        domain=row.domain,
        state=row.state,
        attempts=int(row.attempts),
        next_attempt_at=aware(row.next_attempt_at),
        last_attempt_at=aware(row.last_attempt_at),
        last_code=row.last_code,
        last_status=row.last_status,
        last_reply=row.last_reply,
        remote_mta=row.remote_mta,
        notify=tuple(row.notify.split(",")) if row.notify else (),
        orcpt=row.orcpt,
        delay_notified=bool(row.delay_notified),
        report=row.report,
        finished_at=aware(row.finished_at),
        mail_from=row.mail_from,
        envid=row.envid,
        ret=row.ret,
        size=int(row.size),
        blob_id=row.blob_id,
        origin=row.origin,
        created_at=aware(row.created_at),
        origin_mailbox_id=row.origin_mailbox_id,
        address_sealed=None if row.address_sealed is None else bytes(row.address_sealed),
    )


def _joined() -> Any:
    return select(*_COLUMNS).select_from(r.join(m, r.c.message_id == m.c.id))


async def has_data_key(conn: AsyncConnection, scope: str) -> bool:
    return bool(await conn.scalar(select(data_keys.c.scope).where(data_keys.c.scope == scope)))


async def ensure_data_key(conn: AsyncConnection, keyring: Keyring, scope: str) -> None:
    """Create the data key of ``scope`` unless it exists (two nodes may race: one wins)."""
    if await has_data_key(conn, scope):
        return
    try:
        async with conn.begin_nested():
            await keyring.create_data_key(conn, scope)
    except SQLIntegrityError:  # created meanwhile by another node: use theirs
        pass


async def insert_message(conn: AsyncConnection, **values: Any) -> int:
    return inserted_id(await conn.execute(insert(m).values(**values)))


async def insert_recipients(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(r), list(rows))


def _free(now: datetime) -> Any:
    return or_(r.c.lease_until.is_(None), r.c.lease_until < now)


async def _claim(
    conn: AsyncConnection, condition: Any, now: datetime, owner: str, until: datetime, limit: int
) -> list[QueueRow]:
    ids = list(
        (
            await conn.execute(
                select(r.c.id)
                .where(condition, _free(now))
                .order_by(r.c.next_attempt_at, r.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    if not ids:
        return []
    await conn.execute(
        update(r).where(r.c.id.in_(ids)).values(lease_owner=owner, lease_until=until)
    )
    rows = await conn.execute(_joined().where(r.c.id.in_(ids)).order_by(r.c.id))
    return [_row(row) for row in rows]


async def claim_due(
    conn: AsyncConnection,
    now: datetime,
    owner: str,
    until: datetime,
    limit: int,
    skip_domains: Collection[str] = (),
) -> list[QueueRow]:
    """Lease up to ``limit`` recipients due for an attempt at ``now``, except those of
    ``skip_domains`` (destinations this worker is talking to already)."""
    condition = and_(r.c.state.in_(ACTIVE), r.c.next_attempt_at <= now)
    if skip_domains:
        condition = and_(condition, r.c.domain.not_in(sorted(skip_domains)))
    return await _claim(conn, condition, now, owner, until, limit)


async def claim_reports(
    conn: AsyncConnection, now: datetime, owner: str, until: datetime, limit: int
) -> list[QueueRow]:
    """Lease up to ``limit`` recipients whose delivery report (DSN) is still to be sent."""
    return await _claim(conn, r.c.report != "", now, owner, until, limit)


async def save_attempt(
    conn: AsyncConnection, recipient_id: int, owner: str, values: dict[str, Any]
) -> bool:
    """Record an attempt's result and release the lease; False if the lease was lost or the
    recipient left the active states meanwhile (deleted, bounced by an administrator)."""
    result = await conn.execute(
        update(r)
        .where(r.c.id == recipient_id, r.c.lease_owner == owner, r.c.state.in_(ACTIVE))
        .values(lease_owner=None, lease_until=None, **values)
    )
    return bool(result.rowcount)


async def set_report(conn: AsyncConnection, recipient_id: int, report: str) -> None:
    await conn.execute(update(r).where(r.c.id == recipient_id).values(report=report))


async def finish_reports(conn: AsyncConnection, ids: Iterable[int], owner: str) -> None:
    """The reports of these recipients were sent (or given up): clear them, release leases."""
    await conn.execute(
        update(r)
        .where(r.c.id.in_(list(ids)), r.c.lease_owner == owner)
        .values(report="", lease_owner=None, lease_until=None)
    )


async def postpone(conn: AsyncConnection, ids: Iterable[int], owner: str, until: datetime) -> None:
    """Keep the lease until ``until``: nobody retries these rows before then."""
    await conn.execute(
        update(r).where(r.c.id.in_(list(ids)), r.c.lease_owner == owner).values(lease_until=until)
    )


async def release(conn: AsyncConnection, ids: Iterable[int], owner: str) -> None:
    await conn.execute(
        update(r)
        .where(r.c.id.in_(list(ids)), r.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


async def list_rows(
    conn: AsyncConnection, *, include_finished: bool = False, message_id: int | None = None
) -> list[QueueRow]:
    query = _joined()
    if not include_finished:
        query = query.where(r.c.state.in_(ACTIVE))
    if message_id is not None:
        query = query.where(r.c.message_id == message_id)
    rows = await conn.execute(query.order_by(r.c.message_id, r.c.id))
    return [_row(row) for row in rows]


async def message_exists(conn: AsyncConnection, message_id: int) -> bool:
    return bool(await conn.scalar(select(m.c.id).where(m.c.id == message_id)))


async def make_due(conn: AsyncConnection, now: datetime, message_id: int | None) -> list[QueueRow]:
    """Active recipients (of one message, or all) become due at ``now``; returns them."""
    condition: Any = r.c.state.in_(ACTIVE)
    if message_id is not None:
        condition = and_(condition, r.c.message_id == message_id)
    rows = [_row(row) for row in await conn.execute(_joined().where(condition))]
    if rows:
        await conn.execute(
            update(r).where(r.c.id.in_([row.id for row in rows])).values(next_attempt_at=now)
        )
    return rows


async def bounce_active(
    conn: AsyncConnection, message_id: int, values: dict[str, Any]
) -> list[QueueRow]:
    """Active recipients of a message become bounced (administrator's decision)."""
    condition = and_(r.c.state.in_(ACTIVE), r.c.message_id == message_id)
    rows = [_row(row) for row in await conn.execute(_joined().where(condition))]
    if rows:
        await conn.execute(
            update(r)
            .where(r.c.id.in_([row.id for row in rows]))
            .values(state=BOUNCED, lease_owner=None, lease_until=None, **values)
        )
    return rows


async def delete_message(conn: AsyncConnection, message_id: int) -> str | None:
    """Remove a message and its recipients; returns its blob id (for the caller to delete)."""
    blob_id = await conn.scalar(select(m.c.blob_id).where(m.c.id == message_id))
    await conn.execute(delete(r).where(r.c.message_id == message_id))
    await conn.execute(delete(m).where(m.c.id == message_id))
    return blob_id


def _still_needed() -> Any:
    """A recipient still needs its message's content: not delivered yet, or a report due."""
    return (
        exists().where(r.c.message_id == m.c.id).where(or_(r.c.state.in_(ACTIVE), r.c.report != ""))
    )


async def done_blobs(conn: AsyncConnection, limit: int = 500) -> list[tuple[int, str]]:
    """(message id, blob id) of messages whose content no recipient needs any more."""
    rows = await conn.execute(
        select(m.c.id, m.c.blob_id).where(m.c.blob_id.is_not(None), ~_still_needed()).limit(limit)
    )
    return [(int(row.id), str(row.blob_id)) for row in rows]


async def forget_blob(conn: AsyncConnection, message_id: int, blob_id: str) -> bool:
    """Detach a finished message's content (only if nothing needs it again meanwhile)."""
    result = await conn.execute(
        update(m)
        .where(m.c.id == message_id, m.c.blob_id == blob_id, ~_still_needed())
        .values(blob_id=None)
    )
    return bool(result.rowcount)


async def purge_finished(conn: AsyncConnection, before: datetime) -> int:
    """Delete the history of messages finished before ``before`` (content already gone)."""
    ids = list(
        (
            await conn.execute(
                select(m.c.id)
                .where(m.c.blob_id.is_(None), m.c.created_at < before, ~_still_needed())
                .where(
                    ~exists()
                    .where(r.c.message_id == m.c.id)
                    .where(or_(r.c.finished_at.is_(None), r.c.finished_at >= before))
                )
                .limit(1000)
            )
        ).scalars()
    )
    if ids:
        await conn.execute(delete(r).where(r.c.message_id.in_(ids)))
        await conn.execute(delete(m).where(m.c.id.in_(ids)))
    return len(ids)


def _sealed_record(recipient_id: int) -> str:
    return f"recipient:{recipient_id}"


async def conceal(conn: AsyncConnection, keyring: Keyring, ids: Iterable[int]) -> None:
    """Final recipients: address, ORCPT and last reply sealed, the address hidden in the reply
    left in clear (in the caller's transaction, the one that made them final)."""
    chosen = list(ids)
    if not chosen:
        return
    rows = await conn.execute(
        select(r.c.id, r.c.address, r.c.orcpt, r.c.last_reply).where(
            r.c.id.in_(chosen), r.c.state.in_(FINAL), r.c.address != ""
        )
    )
    for row in rows.all():
        plain = json.dumps(
            {"address": row.address, "orcpt": row.orcpt, "last_reply": row.last_reply}
        ).encode()
        sealed = await keyring.seal(conn, QUEUE_SCOPE, _sealed_record(row.id), "address", plain)
        reply = None if row.last_reply is None else hide_address(row.last_reply, row.address)
        await conn.execute(
            update(r)
            .where(r.c.id == row.id)
            .values(address="", orcpt=None, address_sealed=sealed, last_reply=reply)
        )


async def finished_in_clear(conn: AsyncConnection, limit: int) -> list[int]:
    """Final recipients still in clear (written before migration 0019)."""
    return list(
        (
            await conn.execute(
                select(r.c.id)
                .where(r.c.state.in_(FINAL), r.c.address != "")
                .order_by(r.c.id)
                .limit(limit)
            )
        ).scalars()
    )


async def reveal(
    conn: AsyncConnection, keyring: Keyring, rows: Sequence[QueueRow]
) -> list[QueueRow]:
    """The rows with their sealed addresses opened."""
    out = []
    for row in rows:
        if row.address_sealed is not None:
            plain = await keyring.open(
                conn, QUEUE_SCOPE, _sealed_record(row.id), "address", row.address_sealed
            )
            values = json.loads(plain)
            row = replace(
                row,
                address=str(values["address"]),
                orcpt=values.get("orcpt"),
                last_reply=values.get("last_reply", row.last_reply),
            )
        out.append(row)
    return out


async def notify(conn: AsyncConnection, channel: str) -> None:
    """PostgreSQL ``NOTIFY``: delivered to every listening node when the transaction commits."""
    await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})


@dataclass(frozen=True)
class QueueSummary:
    """What the health checks and the metrics read of the queue (one query)."""

    depth: int  # recipients waiting (queued or deferred)
    oldest_created_at: datetime | None  # of the oldest message still waiting
    oldest_due_free_at: datetime | None  # the longest-due recipient that no worker holds


async def summary(conn: AsyncConnection, now: datetime) -> QueueSummary:
    """The queue's depth, its oldest waiting message and its longest-due unclaimed recipient."""
    depth, oldest = (
        await conn.execute(
            select(func.count(r.c.id), func.min(m.c.created_at))
            .select_from(r.join(m, r.c.message_id == m.c.id))
            .where(r.c.state.in_(ACTIVE))
        )
    ).one()
    due = await conn.scalar(
        select(func.min(r.c.next_attempt_at)).where(
            r.c.state.in_(ACTIVE), r.c.next_attempt_at <= now, _free(now)
        )
    )
    return QueueSummary(int(depth or 0), aware(oldest), aware(due))
