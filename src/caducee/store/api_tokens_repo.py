"""SQL of the API tokens of practice software (``api_tokens``): only the token's keyed hash
is stored; rows come back as :class:`caducee.domain.api_token.ApiToken`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.domain.api_token import ApiToken
from caducee.store.tables import api_tokens
from caducee.store.times import aware


def _token(row: Any) -> ApiToken:
    return ApiToken(
        id=row.id,
        account_id=row.account_id,
        label=row.label,
        scopes=tuple(s for s in row.scopes.split(",") if s),
        mailbox_ids=tuple(int(x) for x in row.mailbox_ids.split(",") if x),
        created_at=aware(row.created_at),
        expires_at=aware(row.expires_at),
        revoked_at=aware(row.revoked_at),
        last_used_at=aware(row.last_used_at),
    )


async def insert_token(
    conn: AsyncConnection,
    *,
    account_id: int,
    label: str,
    token_hash: str,
    scopes: Sequence[str],
    mailbox_ids: Sequence[int],
    now: datetime,
    expires_at: datetime | None,
) -> int:
    result = await conn.execute(
        insert(api_tokens)
        .values(
            account_id=account_id,
            label=label,
            token_hash=token_hash,
            scopes=",".join(scopes),
            mailbox_ids=",".join(str(i) for i in mailbox_ids),
            created_at=now,
            expires_at=expires_at,
        )
        .returning(api_tokens.c.id)
    )
    return int(result.scalar_one())


async def by_id(conn: AsyncConnection, token_id: int) -> ApiToken | None:
    row = (await conn.execute(select(api_tokens).where(api_tokens.c.id == token_id))).first()
    return _token(row) if row is not None else None


async def by_hash(conn: AsyncConnection, token_hash: str) -> ApiToken | None:
    query = select(api_tokens).where(api_tokens.c.token_hash == token_hash)
    row = (await conn.execute(query)).first()
    return _token(row) if row is not None else None


async def of_account(conn: AsyncConnection, account_id: int) -> list[ApiToken]:
    rows = await conn.execute(
        select(api_tokens).where(api_tokens.c.account_id == account_id).order_by(api_tokens.c.id)
    )
    return [_token(r) for r in rows]


async def revoke(conn: AsyncConnection, account_id: int, token_id: int, now: datetime) -> bool:
    """Revoke one live token of the account; whether there was one."""
    result = await conn.execute(
        update(api_tokens)
        .where(
            api_tokens.c.id == token_id,
            api_tokens.c.account_id == account_id,
            api_tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return bool(result.rowcount)


async def touch(conn: AsyncConnection, token_id: int, now: datetime) -> None:
    await conn.execute(
        update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=now)
    )
