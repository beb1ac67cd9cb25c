"""SQL of the CNIL inactivity rule (issue 19, migration 0035): the mailboxes to look at, the
notice remembered (a compare-and-set: of several nodes, one tells), the practice's exemptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.domain.model import MailboxType
from caducee.store.database import insert_ignoring_conflicts
from caducee.store.tables import accounts, mailbox_inactivity, mailboxes
from caducee.store.times import aware


@dataclass(frozen=True)
class Inactive:
    mailbox_id: int
    address: str
    type: MailboxType
    practice_id: int
    owner_account_id: int
    owner_login: str
    disabled: bool
    #: Its last use, or its creation if never used.
    last_use: datetime
    notice_at: datetime | None
    exempt_reason: str | None
    exempt_by: str | None
    exempt_at: datetime | None


def _query() -> Any:
    last_use = func.coalesce(mailboxes.c.last_used_at, mailboxes.c.created_at)
    return (
        select(
            mailboxes.c.id,
            mailboxes.c.address,
            mailboxes.c.type,
            mailboxes.c.practice_id,
            mailboxes.c.owner_account_id,
            mailboxes.c.disabled,
            mailboxes.c.last_used_at,
            mailboxes.c.created_at,
            accounts.c.login.label("owner_login"),
            mailbox_inactivity.c.notice_at,
            mailbox_inactivity.c.exempt_reason,
            mailbox_inactivity.c.exempt_by,
            mailbox_inactivity.c.exempt_at,
        )
        .select_from(
            mailboxes.join(accounts, accounts.c.id == mailboxes.c.owner_account_id).outerjoin(
                mailbox_inactivity, mailbox_inactivity.c.mailbox_id == mailboxes.c.id
            )
        )
        .where(mailboxes.c.deleted_at.is_(None))
        .order_by(last_use, mailboxes.c.address)
    ), last_use


def _row(row: Any) -> Inactive:
    last = aware(row.last_used_at) or aware(row.created_at)
    assert last is not None
    return Inactive(
        mailbox_id=int(row.id),
        address=str(row.address),
        type=MailboxType(row.type),
        practice_id=int(row.practice_id),
        owner_account_id=int(row.owner_account_id),
        owner_login=str(row.owner_login),
        disabled=bool(row.disabled),
        last_use=last,
        notice_at=aware(row.notice_at),
        exempt_reason=row.exempt_reason,
        exempt_by=row.exempt_by,
        exempt_at=aware(row.exempt_at),
    )


async def watched(conn: AsyncConnection, unused_since: datetime) -> list[Inactive]:
    """Mailboxes unused since ``unused_since`` or before, and every one told or exempted."""
    query, last_use = _query()
    rows = await conn.execute(
        query.where(
            or_(
                last_use <= unused_since,
                mailbox_inactivity.c.notice_at.is_not(None),
                mailbox_inactivity.c.exempt_reason.is_not(None),
            )
        )
    )
    return [_row(row) for row in rows]


async def one(conn: AsyncConnection, mailbox_id: int) -> Inactive | None:
    query, _ = _query()
    row = (await conn.execute(query.where(mailboxes.c.id == mailbox_id))).first()
    return _row(row) if row is not None else None


async def _ensure(conn: AsyncConnection, mailbox_id: int) -> None:
    await conn.execute(
        insert_ignoring_conflicts(conn, mailbox_inactivity, {"mailbox_id": mailbox_id})
    )


async def set_notice(
    conn: AsyncConnection, mailbox_id: int, old: datetime | None, new: datetime | None
) -> bool:
    """Move the mailbox's notice from ``old`` to ``new``; False when another node did first."""
    await _ensure(conn, mailbox_id)
    column = mailbox_inactivity.c.notice_at
    result = await conn.execute(
        update(mailbox_inactivity)
        .where(
            mailbox_inactivity.c.mailbox_id == mailbox_id,
            column.is_(None) if old is None else column == old,
        )
        .values(notice_at=new)
    )
    return bool(result.rowcount)


async def set_exemption(
    conn: AsyncConnection,
    mailbox_id: int,
    reason: str | None,
    by: str | None,
    at: datetime | None,
) -> None:
    await _ensure(conn, mailbox_id)
    await conn.execute(
        update(mailbox_inactivity)
        .where(mailbox_inactivity.c.mailbox_id == mailbox_id)
        .values(exempt_reason=reason, exempt_by=by, exempt_at=at)
    )


async def forget(conn: AsyncConnection, mailbox_id: int) -> None:
    """The mailbox goes (its deletion): its row goes with it."""
    await conn.execute(
        delete(mailbox_inactivity).where(mailbox_inactivity.c.mailbox_id == mailbox_id)
    )


async def admins_of(conn: AsyncConnection, practice_id: int) -> list[str]:
    """The logins of the practice's enabled administrators."""
    rows = await conn.execute(
        select(accounts.c.login)
        .where(
            accounts.c.practice_id == practice_id,
            accounts.c.role == "admin",
            accounts.c.disabled.is_(False),
        )
        .order_by(accounts.c.login)
    )
    return [str(row.login) for row in rows]
