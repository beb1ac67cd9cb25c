"""What a node's own plumbing asks of the database: is it answering, which master keys its
data keys need, and the cross-node wake-ups (PostgreSQL ``NOTIFY``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.database import Database
from caducee.store.tables import data_keys


async def answers(conn: AsyncConnection) -> bool:
    """Whether the database answers a trivial query (``SELECT 1``); driver errors propagate."""
    return bool((await conn.execute(text("SELECT 1"))).scalar_one() == 1)


async def master_key_ids_in_use(conn: AsyncConnection) -> set[str]:
    """The ids of the master keys that wrap at least one data key."""
    return {str(k) for k in (await conn.scalars(select(data_keys.c.master_key_id).distinct()))}


async def notify(db: Database, channel: str, payloads: Iterable[str]) -> None:
    """PostgreSQL ``NOTIFY`` on ``channel``, one per payload, committed at once (every node
    listening gets them, this one included)."""
    async with db.engine.connect() as conn:
        for payload in payloads:
            await conn.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": channel, "payload": payload},
            )
        await conn.commit()


async def listen(
    db: Database, channel: str, on_listening: Callable[[], None] | None = None
) -> AsyncIterator[str]:
    """The payloads of PostgreSQL notifications on ``channel``, as they come, on a dedicated
    autocommit connection (psycopg's own: SQLAlchemy's pool does not deliver notifications).
    Ends only by an error of the connection (the caller reconnects) or by cancellation."""
    import psycopg

    url = db.engine.url.set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f"LISTEN {channel}")
        if on_listening is not None:
            on_listening()
        async for notify in conn.notifies():
            yield notify.payload
