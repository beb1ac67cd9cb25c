"""SQL for practices, their domains, accounts, mailboxes, folders and delegations."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.domain.model import (
    DEFAULT_FOLDERS,
    Account,
    Delegation,
    Folder,
    Mailbox,
    MailboxType,
    Practice,
    Role,
)
from caducee.store.database import inserted_id
from caducee.store.tables import (
    accounts,
    delegations,
    folders,
    mailboxes,
    practice_domains,
    practices,
)
from caducee.store.times import aware


def _now() -> datetime:
    return datetime.now(UTC)


# --- practices -------------------------------------------------------------------------------


async def insert_practice(
    conn: AsyncConnection, name: str, finess: str | None, siret: str | None, mailbox_limit: int
) -> int:
    result = await conn.execute(
        insert(practices).values(
            name=name,
            finess=finess,
            siret=siret,
            mailbox_limit=mailbox_limit,
            created_at=_now(),
        )
    )
    return inserted_id(result)


async def insert_domain(conn: AsyncConnection, practice_id: int, domain: str) -> None:
    await conn.execute(insert(practice_domains).values(domain=domain, practice_id=practice_id))


async def domain_owner(conn: AsyncConnection, domain: str) -> int | None:
    return await conn.scalar(
        select(practice_domains.c.practice_id).where(practice_domains.c.domain == domain)
    )


async def all_domains(conn: AsyncConnection) -> Sequence[str]:
    return (await conn.scalars(select(practice_domains.c.domain))).all()


async def get_practice(
    conn: AsyncConnection, practice_id: int, *, for_update: bool = False
) -> Practice | None:
    query = select(practices).where(practices.c.id == practice_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    domains = (
        await conn.scalars(
            select(practice_domains.c.domain)
            .where(practice_domains.c.practice_id == practice_id)
            .order_by(practice_domains.c.domain)
        )
    ).all()
    return Practice(row.id, row.name, row.finess, row.siret, row.mailbox_limit, tuple(domains))


async def list_practice_ids(conn: AsyncConnection) -> Sequence[int]:
    return (await conn.scalars(select(practices.c.id).order_by(practices.c.id))).all()


async def update_practice(conn: AsyncConnection, practice_id: int, **values: Any) -> None:
    await conn.execute(update(practices).where(practices.c.id == practice_id).values(**values))


# --- accounts --------------------------------------------------------------------------------


def account_from_row(row: Any) -> Account:
    return Account(
        id=row.id,
        practice_id=row.practice_id,
        login=row.login,
        civility=row.civility,
        last_name=row.last_name,
        first_name=row.first_name,
        profession=row.profession,
        rpps=row.rpps,
        adeli=row.adeli,
        role=Role(row.role),
        disabled=bool(row.disabled),
        totp_enabled=bool(row.totp_enabled),
        last_used_at=aware(getattr(row, "last_used_at", None)),
    )


async def insert_account(conn: AsyncConnection, **values: Any) -> int:
    now = _now()
    result = await conn.execute(
        insert(accounts).values(created_at=now, password_changed_at=now, **values)
    )
    return inserted_id(result)


async def account_by_login(conn: AsyncConnection, login: str) -> Account | None:
    row = (await conn.execute(select(accounts).where(accounts.c.login == login))).first()
    return account_from_row(row) if row else None


async def account_by_id(conn: AsyncConnection, account_id: int) -> Account | None:
    row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).first()
    return account_from_row(row) if row else None


async def account_exists_with(conn: AsyncConnection, column: str, value: str) -> bool:
    found = await conn.scalar(select(accounts.c.id).where(accounts.c[column] == value))
    return found is not None


async def list_accounts(conn: AsyncConnection, practice_id: int | None = None) -> list[Account]:
    query = select(accounts).order_by(accounts.c.login)
    if practice_id is not None:
        query = query.where(accounts.c.practice_id == practice_id)
    return [account_from_row(row) for row in (await conn.execute(query)).all()]


async def update_account(conn: AsyncConnection, account_id: int, **values: Any) -> None:
    await conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))


# --- mailboxes -------------------------------------------------------------------------------


def _mailbox(row: Any) -> Mailbox:
    return Mailbox(
        id=row.id,
        practice_id=row.practice_id,
        address=row.address,
        type=MailboxType(row.type),
        owner_account_id=row.owner_account_id,
        quota_bytes=row.quota_bytes,
        used_bytes=row.used_bytes,
        disabled=bool(row.disabled),
        last_used_at=aware(getattr(row, "last_used_at", None)),
    )


async def count_mailboxes(conn: AsyncConnection, practice_id: int) -> int:
    count = await conn.scalar(
        select(func.count()).select_from(mailboxes).where(mailboxes.c.practice_id == practice_id)
    )
    return int(count or 0)


async def insert_mailbox(
    conn: AsyncConnection,
    practice_id: int,
    address: str,
    mailbox_type: MailboxType,
    owner_account_id: int,
    quota_bytes: int,
) -> int:
    result = await conn.execute(
        insert(mailboxes).values(
            practice_id=practice_id,
            address=address,
            type=mailbox_type.value,
            owner_account_id=owner_account_id,
            quota_bytes=quota_bytes,
            created_at=_now(),
        )
    )
    return inserted_id(result)


async def mailbox_by_address(conn: AsyncConnection, address: str) -> Mailbox | None:
    row = (await conn.execute(select(mailboxes).where(mailboxes.c.address == address))).first()
    return _mailbox(row) if row else None


async def mailbox_by_id(
    conn: AsyncConnection, mailbox_id: int, *, for_update: bool = False
) -> Mailbox | None:
    query = select(mailboxes).where(mailboxes.c.id == mailbox_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return _mailbox(row) if row else None


async def list_mailboxes(conn: AsyncConnection, practice_id: int | None = None) -> list[Mailbox]:
    query = select(mailboxes).order_by(mailboxes.c.address)
    if practice_id is not None:
        query = query.where(mailboxes.c.practice_id == practice_id)
    return [_mailbox(row) for row in (await conn.execute(query)).all()]


async def mailbox_logins(
    conn: AsyncConnection, *, practice_id: int | None = None, owner_account_id: int | None = None
) -> list[Mailbox]:
    """Mailboxes whose address is no account's login (TLT, ORG, APP, ...): those that may have
    app passwords of their own, by address."""
    query = (
        select(mailboxes)
        .where(mailboxes.c.address.not_in(select(accounts.c.login)))
        .order_by(mailboxes.c.address)
    )
    if practice_id is not None:
        query = query.where(mailboxes.c.practice_id == practice_id)
    if owner_account_id is not None:
        query = query.where(mailboxes.c.owner_account_id == owner_account_id)
    return [_mailbox(row) for row in (await conn.execute(query)).all()]


async def update_mailbox(conn: AsyncConnection, mailbox_id: int, **values: Any) -> None:
    await conn.execute(update(mailboxes).where(mailboxes.c.id == mailbox_id).values(**values))


async def add_used_bytes(conn: AsyncConnection, mailbox_id: int, delta: int) -> None:
    await conn.execute(
        update(mailboxes)
        .where(mailboxes.c.id == mailbox_id)
        .values(used_bytes=mailboxes.c.used_bytes + delta)
    )


async def quota_notified(conn: AsyncConnection, mailbox_id: int) -> int:
    """The last quota threshold (per cent) the mailbox's owner was told of."""
    row = (
        await conn.execute(select(mailboxes.c.quota_notified).where(mailboxes.c.id == mailbox_id))
    ).first()
    return int(row.quota_notified) if row is not None else 0


async def set_quota_notified(conn: AsyncConnection, mailbox_id: int, old: int, new: int) -> bool:
    """Move the threshold from ``old`` to ``new``; False when another node did first."""
    result = await conn.execute(
        update(mailboxes)
        .where(mailboxes.c.id == mailbox_id, mailboxes.c.quota_notified == old)
        .values(quota_notified=new)
    )
    return bool(result.rowcount)


async def quota_watched(conn: AsyncConnection, percent: int) -> list[int]:
    """Mailboxes at ``percent`` % of their quota or more, or whose owner was told of a
    threshold (to lower it when the usage falls back)."""
    rows = await conn.execute(
        select(mailboxes.c.id)
        .where(
            (mailboxes.c.used_bytes * 100 >= mailboxes.c.quota_bytes * percent)
            | (mailboxes.c.quota_notified > 0)
        )
        .order_by(mailboxes.c.id)
    )
    return [int(row.id) for row in rows]


# --- folders ---------------------------------------------------------------------------------


def folder_from_row(row: Any) -> Folder:
    """A `folders` row as the domain's Folder (the one builder: every repository uses it)."""
    return Folder(
        id=row.id,
        mailbox_id=row.mailbox_id,
        name=row.name,
        special_use=row.special_use,
        uidvalidity=row.uidvalidity,
        uidnext=row.uidnext,
        highestmodseq=row.highestmodseq,
        subscribed=bool(row.subscribed),
        quota_exempt=bool(row.quota_exempt),
    )


async def insert_default_folders(conn: AsyncConnection, mailbox_id: int) -> None:
    uidvalidity = int(time.time())
    await conn.execute(
        insert(folders),
        [
            {
                "mailbox_id": mailbox_id,
                "name": name,
                "special_use": use.value,
                "uidvalidity": uidvalidity,
                "uidnext": 1,
                "highestmodseq": 1,
                "subscribed": True,
                "created_at": _now(),
            }
            for name, use in DEFAULT_FOLDERS
        ],
    )


async def list_folders(conn: AsyncConnection, mailbox_id: int) -> list[Folder]:
    rows = (
        await conn.execute(
            select(folders).where(folders.c.mailbox_id == mailbox_id).order_by(folders.c.id)
        )
    ).all()
    return [folder_from_row(row) for row in rows]


async def folder_by_name(
    conn: AsyncConnection, mailbox_id: int, name: str, *, for_update: bool = False
) -> Folder | None:
    query = select(folders).where(folders.c.mailbox_id == mailbox_id, folders.c.name == name)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return folder_from_row(row) if row else None


async def allocate_uid(conn: AsyncConnection, folder_id: int) -> tuple[int, int]:
    """Reserve the next UID and MODSEQ of a folder (the row is locked by the transaction)."""
    row = (
        await conn.execute(
            select(folders.c.uidnext, folders.c.highestmodseq)
            .where(folders.c.id == folder_id)
            .with_for_update()
        )
    ).one()
    uid, modseq = int(row.uidnext), int(row.highestmodseq) + 1
    await conn.execute(
        update(folders)
        .where(folders.c.id == folder_id)
        .values(uidnext=uid + 1, highestmodseq=modseq)
    )
    return uid, modseq


# --- delegations -----------------------------------------------------------------------------


_delegation_query = (
    select(
        delegations.c.mailbox_id,
        mailboxes.c.address,
        delegations.c.account_id,
        accounts.c.login,
        delegations.c.can_send,
    )
    .join(mailboxes, mailboxes.c.id == delegations.c.mailbox_id)
    .join(accounts, accounts.c.id == delegations.c.account_id)
)


def _delegation(row: Any) -> Delegation:
    return Delegation(row.mailbox_id, row.address, row.account_id, row.login, bool(row.can_send))


async def get_delegation(
    conn: AsyncConnection, mailbox_id: int, account_id: int
) -> Delegation | None:
    row = (
        await conn.execute(
            _delegation_query.where(
                delegations.c.mailbox_id == mailbox_id, delegations.c.account_id == account_id
            )
        )
    ).first()
    return _delegation(row) if row else None


async def upsert_delegation(
    conn: AsyncConnection, mailbox_id: int, account_id: int, can_send: bool, granted_by: int | None
) -> None:
    existing = await get_delegation(conn, mailbox_id, account_id)
    if existing is None:
        await conn.execute(
            insert(delegations).values(
                mailbox_id=mailbox_id,
                account_id=account_id,
                can_send=can_send,
                granted_by=granted_by,
                created_at=_now(),
            )
        )
    else:
        await conn.execute(
            update(delegations)
            .where(delegations.c.mailbox_id == mailbox_id, delegations.c.account_id == account_id)
            .values(can_send=can_send, granted_by=granted_by)
        )


async def delete_delegation(conn: AsyncConnection, mailbox_id: int, account_id: int) -> bool:
    result = await conn.execute(
        delegations.delete().where(
            delegations.c.mailbox_id == mailbox_id, delegations.c.account_id == account_id
        )
    )
    return bool(result.rowcount)


async def list_delegations(
    conn: AsyncConnection, *, mailbox_id: int | None = None, account_id: int | None = None
) -> list[Delegation]:
    query = _delegation_query.order_by(mailboxes.c.address, accounts.c.login)
    if mailbox_id is not None:
        query = query.where(delegations.c.mailbox_id == mailbox_id)
    if account_id is not None:
        query = query.where(delegations.c.account_id == account_id)
    return [_delegation(row) for row in (await conn.execute(query)).all()]


async def account_by_rpps(conn: AsyncConnection, rpps: str) -> Account | None:
    row = (await conn.execute(select(accounts).where(accounts.c.rpps == rpps))).first()
    return account_from_row(row) if row else None
