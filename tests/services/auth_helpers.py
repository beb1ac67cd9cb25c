"""Builders for the authentication tests: accounts inserted directly, audit rows read back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, insert, select

from caducee.app import App
from caducee.services.passwords import hash_password
from caducee.store.tables import accounts, audit_log, practices

PASSWORD = "Correct-Horse-42-Battery"
T0 = datetime(2031, 3, 14, 9, 26, 0, tzinfo=UTC)  # a step boundary: 9:26:00 UTC


async def add_account(
    app: App,
    login: str = "dr.martin@cabinet.test",
    password: str = PASSWORD,
    *,
    password_hash: str | None = None,
    disabled: bool = False,
) -> int:
    """Insert an account (and the practice, the first time); return its id."""
    now = datetime.now(UTC)
    async with app.db.write() as conn:
        practice_id = await conn.scalar(select(practices.c.id).limit(1))
        if practice_id is None:
            practice_id = (
                await conn.execute(
                    insert(practices)
                    .values(name="Cabinet Test", mailbox_limit=19, created_at=now)
                    .returning(practices.c.id)
                )
            ).scalar_one()
        result = await conn.execute(
            insert(accounts)
            .values(
                practice_id=practice_id,
                login=login.lower(),
                last_name="Martin",
                first_name="Jeanne",
                role="praticien",
                disabled=disabled,
                password_hash=password_hash or hash_password(password),
                created_at=now,
                password_changed_at=now,
            )
            .returning(accounts.c.id)
        )
        return int(result.scalar_one())


async def account_row(app: App, login: str = "dr.martin@cabinet.test") -> Row[Any]:
    async with app.db.read() as conn:
        return (await conn.execute(select(accounts).where(accounts.c.login == login))).one()


async def audit_rows(app: App, action: str | None = None) -> list[Row[Any]]:
    query = select(audit_log).order_by(audit_log.c.seq)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    async with app.db.read() as conn:
        return list((await conn.execute(query)).all())


async def audit_text(app: App) -> str:
    """Every column of every audit record, as one text to search for leaked secrets."""
    return "\n".join(
        "|".join(str(value) for value in row._mapping.values()) for row in await audit_rows(app)
    )
