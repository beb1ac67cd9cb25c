"""What a node's own plumbing asks of the database: is it answering, which master keys its
data keys need, the cross-node wake-ups (PostgreSQL ``NOTIFY``), and the nodes serving the
database (``cluster_nodes``: one row per data directory, with a heartbeat)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.config import Settings
from caducee.store.database import Database
from caducee.store.tables import cluster_nodes, data_keys
from caducee.store.times import aware

#: The node's id, in its data directory: kept across restarts (a restarted node is the same
#: node), different for every data directory (so two nodes never share one).
NODE_ID_FILE = "node-id"


@dataclass(frozen=True)
class NodeRow:
    node_id: str
    hostname: str
    data_dir: str
    version: str
    schema_revision: str
    blob_store: str
    pid: int
    started_at: datetime
    seen_at: datetime


def node_id(settings: Settings) -> str:
    """This data directory's node id (created on first use)."""
    path = settings.data_dir / NODE_ID_FILE
    try:
        found = path.read_text("ascii").strip()
    except FileNotFoundError:
        found = ""
    if not found:
        found = uuid.uuid4().hex
        tmp = path.with_name(f".{NODE_ID_FILE}.tmp")
        tmp.write_text(found + "\n", "ascii")
        tmp.replace(path)
    return found


async def lock_nodes(conn: AsyncConnection) -> None:
    """Serialise the nodes' start-up checks (PostgreSQL; SQLite's writes are serial already):
    two nodes starting at once cannot both find the other absent."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("LOCK TABLE cluster_nodes IN SHARE ROW EXCLUSIVE MODE"))


async def nodes(conn: AsyncConnection, seen_since: datetime | None = None) -> list[NodeRow]:
    """The registered nodes (those seen since ``seen_since``), most recently seen first."""
    query = select(cluster_nodes).order_by(cluster_nodes.c.seen_at.desc())
    if seen_since is not None:
        query = query.where(cluster_nodes.c.seen_at >= seen_since)
    return [
        NodeRow(
            node_id=r.node_id,
            hostname=r.hostname,
            data_dir=r.data_dir,
            version=r.version,
            schema_revision=r.schema_revision,
            blob_store=r.blob_store,
            pid=r.pid,
            started_at=aware(r.started_at),
            seen_at=aware(r.seen_at),
        )
        for r in (await conn.execute(query))
    ]


async def register(conn: AsyncConnection, row: NodeRow) -> None:
    """Write (or rewrite) ``row``: the node starts serving."""
    await conn.execute(delete(cluster_nodes).where(cluster_nodes.c.node_id == row.node_id))
    await conn.execute(
        insert(cluster_nodes).values(
            node_id=row.node_id,
            hostname=row.hostname,
            data_dir=row.data_dir,
            version=row.version,
            schema_revision=row.schema_revision,
            blob_store=row.blob_store,
            pid=row.pid,
            started_at=row.started_at,
            seen_at=row.seen_at,
        )
    )


async def beat(conn: AsyncConnection, node: str, now: datetime) -> bool:
    """The node's heartbeat; False when its row is gone (then register it again)."""
    result = await conn.execute(
        update(cluster_nodes).where(cluster_nodes.c.node_id == node).values(seen_at=now)
    )
    return bool(result.rowcount)


async def unregister(conn: AsyncConnection, node: str) -> None:
    await conn.execute(delete(cluster_nodes).where(cluster_nodes.c.node_id == node))


async def forget_all_nodes(conn: AsyncConnection) -> int:
    """Empty the registry (a restored copy names the original installation's nodes)."""
    return int((await conn.execute(delete(cluster_nodes))).rowcount or 0)


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
