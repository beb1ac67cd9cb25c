"""Secret tokens looked up by their hash (verification links, pickup links, session cookies).

Only the SHA-256 of a token is stored; a token is found by hashing what the client presents.
An empty or over-long token is never looked up.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Column, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

#: No token we issue is longer; a longer one is refused before any hashing or query.
MAX_TOKEN_LENGTH = 100


def token_digest(token: str) -> str:
    """The stored form of a token: the hex SHA-256 of its UTF-8 (never fails on odd input)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


async def row_by_token(conn: AsyncConnection, column: Column[Any], token: str) -> Row[Any] | None:
    """The row of ``column``'s table whose hash column holds ``token``'s digest (None for an
    unknown, empty or over-long token)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    query = select(column.table).where(column == token_digest(token))
    return (await conn.execute(query)).first()
