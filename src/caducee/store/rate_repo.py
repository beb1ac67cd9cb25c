"""Token buckets in the database (``services.rate_limits``): one atomic statement per check,
the same on SQLite and PostgreSQL, so every worker process and node counts in one bucket."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, delete, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.tables import rate_buckets as b


def _refilled(now: float, capacity: float, rate: float) -> Any:
    """The bucket's tokens at ``now``: what it had, plus the refill since, at most full."""
    grown = b.c.tokens + (literal(now) - b.c.updated_at) * literal(rate)
    return case((grown > literal(capacity), literal(capacity)), else_=grown)


async def take(
    conn: AsyncConnection, name: str, client: str, now: float, capacity: float, rate: float
) -> bool:
    """Take one token from ``client``'s bucket if it has one: one INSERT … ON CONFLICT DO
    UPDATE … RETURNING (a new bucket starts full, less the token taken)."""
    insert = postgresql.insert(b) if conn.dialect.name == "postgresql" else sqlite.insert(b)
    refilled = _refilled(now, capacity, rate)
    statement = (
        insert.values(name=name, client=client, tokens=capacity - 1.0, updated_at=now, allowed=True)
        .on_conflict_do_update(
            index_elements=[b.c.name, b.c.client],
            set_={
                # Every right-hand side reads the row as it was (SQL's UPDATE semantics).
                "tokens": case((refilled >= 1.0, refilled - 1.0), else_=refilled),
                "updated_at": now,
                "allowed": refilled >= 1.0,
            },
        )
        .returning(b.c.allowed)
    )
    return bool((await conn.execute(statement)).scalar_one())


async def tokens(
    conn: AsyncConnection, name: str, client: str, now: float, capacity: float, rate: float
) -> float:
    """``client``'s tokens at ``now`` (a full bucket if it has none yet), taking nothing."""
    found = await conn.scalar(
        select(_refilled(now, capacity, rate)).where(b.c.name == name, b.c.client == client)
    )
    return capacity if found is None else float(found)


async def purge(conn: AsyncConnection, before: float) -> int:
    """Forget buckets untouched since ``before`` (full again by now: the same as absent)."""
    result = await conn.execute(delete(b).where(b.c.updated_at < before))
    return int(result.rowcount or 0)
