"""The database engine: SQLite (WAL, embedded default) or PostgreSQL, one async API for both.

Write transactions on SQLite start with ``BEGIN IMMEDIATE`` so that concurrent writers queue on
the busy timeout instead of failing on a read-to-write upgrade; ``synchronous=FULL`` makes every
commit durable before it returns (a message is acknowledged only once it is on disk).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import CursorResult, event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_POOL_SIZE = 20
SQLITE_POOL_OVERFLOW = 20


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook emit BEGIN itself (pysqlite's own handling is off).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("caducee_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """Owns the engine; hands out read and write transactions."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            # Connections are kept (each is a thread): opening one per burst costs more than a
            # message's whole delivery.
            self.engine: AsyncEngine = create_async_engine(
                url,
                echo=echo,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                pool_size=SQLITE_POOL_SIZE,
                max_overflow=SQLITE_POOL_OVERFLOW,
            )
            event.listen(self.engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_on_begin)
        else:
            self.engine = create_async_engine(
                url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True
            )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction (a consistent snapshot)."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed durably on exit, rolled back on error."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(caducee_write=True)
            async with conn.begin():
                yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


def inserted_id(result: CursorResult[Any]) -> int:
    """The integer primary key of the row an INSERT just created."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])
