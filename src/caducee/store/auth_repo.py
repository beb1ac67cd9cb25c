"""SQL for authentication: account credentials, TOTP columns, app passwords, failure counters.

The rules (lockout back-off, replay window, scopes) live in ``caducee.services``; this module
only reads and writes rows, in the caller's transaction. Datetimes come back timezone-aware
(SQLite returns naive datetimes: they are stored in UTC).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.domain.model import Account
from caducee.store import directory_repo
from caducee.store.database import insert_ignoring_conflicts
from caducee.store.tables import accounts, app_passwords, auth_failures
from caducee.store.times import aware

# --- accounts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountCredentials:
    """An account and its authentication columns (never shown to anyone)."""

    account: Account
    password_hash: str
    totp_sealed: bytes | None
    totp_last_step: int | None


_account = directory_repo.account_from_row


async def account_credentials(conn: AsyncConnection, login: str) -> AccountCredentials | None:
    """The account whose login is ``login`` (already normalised), with its secrets."""
    row = (await conn.execute(select(accounts).where(accounts.c.login == login))).first()
    if row is None:
        return None
    sealed = row.totp_sealed
    return AccountCredentials(
        account=_account(row),
        password_hash=row.password_hash,
        totp_sealed=bytes(sealed) if sealed is not None else None,
        totp_last_step=row.totp_last_step,
    )


async def set_password_hash(conn: AsyncConnection, account_id: int, password_hash: str) -> None:
    """Replace the stored hash (rehash with today's parameters; the password is unchanged)."""
    await conn.execute(
        update(accounts).where(accounts.c.id == account_id).values(password_hash=password_hash)
    )


async def set_totp(
    conn: AsyncConnection,
    account_id: int,
    sealed: bytes | None,
    *,
    enabled: bool,
    last_step: int | None,
) -> None:
    await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(totp_sealed=sealed, totp_enabled=enabled, totp_last_step=last_step)
    )


async def advance_totp_step(conn: AsyncConnection, account_id: int, step: int) -> bool:
    """Record ``step`` as the last used TOTP step if it is newer than the stored one.

    One conditional UPDATE, so two nodes accepting the same code at once cannot both succeed.
    Returns False when the step was already used (replay).
    """
    result = await conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .where(or_(accounts.c.totp_last_step.is_(None), accounts.c.totp_last_step < step))
        .values(totp_last_step=step)
    )
    return bool(result.rowcount)


# --- failure counters -----------------------------------------------------------------------


@dataclass(frozen=True)
class FailureRow:
    key: str
    failures: int
    last_failure_at: datetime
    locked_until: datetime | None


def _failure(row: Any) -> FailureRow:
    return FailureRow(
        key=row.key,
        failures=row.failures,
        last_failure_at=aware(row.last_failure_at),
        locked_until=aware(row.locked_until),
    )


async def failures(conn: AsyncConnection, keys: Sequence[str]) -> list[FailureRow]:
    rows = await conn.execute(select(auth_failures).where(auth_failures.c.key.in_(list(keys))))
    return [_failure(row) for row in rows]


async def lock_failure_rows(
    conn: AsyncConnection, keys: Sequence[str], now: datetime
) -> list[FailureRow]:
    """The counter rows of ``keys`` (created at zero if missing), locked until the transaction
    ends, in key order.

    ``INSERT … ON CONFLICT DO NOTHING`` then ``SELECT … ORDER BY key FOR UPDATE``: concurrent
    attempts on the same account or address, on any node, run one after the other from here
    on, even before their key's first failure (SQLite's single writer does the same). Every
    caller locks in key order, so two attempts cannot deadlock.
    """
    ordered = sorted(set(keys))
    values = [
        {"key": key, "failures": 0, "last_failure_at": now, "locked_until": None} for key in ordered
    ]
    await conn.execute(insert_ignoring_conflicts(conn, auth_failures, values))
    rows = await conn.execute(
        select(auth_failures)
        .where(auth_failures.c.key.in_(ordered))
        .order_by(auth_failures.c.key)
        .with_for_update()
    )
    return [_failure(row) for row in rows]


async def save_failure(
    conn: AsyncConnection,
    key: str,
    failures: int,
    last_failure_at: datetime,
    locked_until: datetime | None,
) -> None:
    await conn.execute(
        update(auth_failures)
        .where(auth_failures.c.key == key)
        .values(failures=failures, last_failure_at=last_failure_at, locked_until=locked_until)
    )


async def delete_failures(conn: AsyncConnection, keys: Iterable[str]) -> None:
    await conn.execute(delete(auth_failures).where(auth_failures.c.key.in_(list(keys))))


async def delete_unused_failures(conn: AsyncConnection, keys: Iterable[str]) -> None:
    """Delete the counters of ``keys`` still at zero (created only to be locked)."""
    await conn.execute(
        delete(auth_failures)
        .where(auth_failures.c.key.in_(list(keys)))
        .where(auth_failures.c.failures == 0)
    )


async def delete_stale_failures(conn: AsyncConnection, before: datetime) -> int:
    """Delete counters whose last failure and lock end are both older than ``before``."""
    result = await conn.execute(
        delete(auth_failures)
        .where(auth_failures.c.last_failure_at < before)
        .where(or_(auth_failures.c.locked_until.is_(None), auth_failures.c.locked_until < before))
    )
    return int(result.rowcount or 0)


# --- app passwords --------------------------------------------------------------------------


@dataclass(frozen=True)
class AppPasswordRow:
    id: int
    account_id: int
    mailbox_id: int | None  # None: the account's own; else the mailbox it opens
    label: str
    secret_sha256: str
    scopes: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_by: str | None


def _app_password(row: Any) -> AppPasswordRow:
    return AppPasswordRow(
        id=row.id,
        account_id=row.account_id,
        mailbox_id=row.mailbox_id,
        label=row.label,
        secret_sha256=row.secret_sha256,
        scopes=row.scopes,
        created_at=aware(row.created_at),
        last_used_at=aware(row.last_used_at),
        revoked_at=aware(row.revoked_at),
        created_by=row.created_by,
    )


@dataclass(frozen=True)
class Holder:
    """Whose app passwords: an account's own (``mailbox_id`` None) or one mailbox's."""

    account_id: int
    mailbox_id: int | None = None

    def where(self) -> Any:
        if self.mailbox_id is None:
            return and_(
                app_passwords.c.account_id == self.account_id, app_passwords.c.mailbox_id.is_(None)
            )
        return app_passwords.c.mailbox_id == self.mailbox_id


async def insert_app_password(
    conn: AsyncConnection,
    holder: Holder,
    label: str,
    secret_sha256: str,
    scopes: str,
    now: datetime,
    created_by: str,
) -> int:
    result = await conn.execute(
        insert(app_passwords)
        .values(
            account_id=holder.account_id,
            mailbox_id=holder.mailbox_id,
            label=label,
            secret_sha256=secret_sha256,
            scopes=scopes,
            created_at=now,
            created_by=created_by,
        )
        .returning(app_passwords.c.id)
    )
    return int(result.scalar_one())


async def app_passwords_of(
    conn: AsyncConnection, holder: Holder, *, include_revoked: bool = True
) -> list[AppPasswordRow]:
    """The holder's app passwords, oldest first (hashes included: for the services only).
    An account's own never include its mailboxes' ones, nor the reverse."""
    query = select(app_passwords).where(holder.where())
    if not include_revoked:
        query = query.where(app_passwords.c.revoked_at.is_(None))
    rows = await conn.execute(query.order_by(app_passwords.c.id))
    return [_app_password(row) for row in rows]


async def count_active_app_passwords(conn: AsyncConnection, holder: Holder) -> int:
    count = await conn.scalar(
        select(func.count())
        .select_from(app_passwords)
        .where(holder.where())
        .where(app_passwords.c.revoked_at.is_(None))
    )
    return int(count or 0)


async def touch_app_password(conn: AsyncConnection, app_password_id: int, now: datetime) -> None:
    await conn.execute(
        update(app_passwords).where(app_passwords.c.id == app_password_id).values(last_used_at=now)
    )


async def revoke_app_password(
    conn: AsyncConnection, holder: Holder, app_password_id: int, now: datetime
) -> bool:
    """Mark it revoked; False if the holder has no such (non-revoked) app password."""
    result = await conn.execute(
        update(app_passwords)
        .where(app_passwords.c.id == app_password_id)
        .where(holder.where())
        .where(app_passwords.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)
