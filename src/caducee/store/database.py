"""The database engine: SQLite (WAL, embedded default) or PostgreSQL, one async API for both.

Write transactions on SQLite start with ``BEGIN IMMEDIATE`` so that concurrent writers queue on
the busy timeout instead of failing on a read-to-write upgrade; ``synchronous=FULL`` makes every
commit durable before it returns (a message is acknowledged only once it is on disk): in WAL
mode, the write-ahead log is fsynced at every commit (sqlite.org/pragma.html#pragma_synchronous;
``NORMAL`` would skip that fsync and could lose acknowledged mail at a power cut).

Checkpoints (copying the log back into the database file, then an fsync of that file) are not
left to the commit that happens to cross SQLite's threshold: that commit, and every message of
its group, waited for ~4 MB to be copied (1,000 pages: every few dozen delivery groups).
:meth:`Database.write_sync` runs a passive checkpoint in a thread of its own every
:data:`CHECKPOINT_EVERY` transactions, beside the next commits (sqlite.org/wal.html, a
checkpoint runs concurrently with readers and the writer); the automatic one stays as a bound,
at :data:`SQLITE_AUTOCHECKPOINT` pages, for other processes and a checkpointer that falls
behind.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import CursorResult, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from caducee.errors import DatabaseUnavailable, StorageFull, TemporaryFailure

if TYPE_CHECKING:
    from caducee.store.keyring import Keyring

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_POOL_SIZE = 20
#: Page cache of each SQLite connection (KiB). SQLite's default, 2 MiB, is per connection and
#: the pool keeps up to 40: their caches once held ~18 MB more after a burst of mail, for no
#: measurable speed (the kernel's page cache holds the file; WAL readers' caches are reset by
#: every write anyway).
SQLITE_PAGE_CACHE_KIB = 256
SQLITE_POOL_OVERFLOW = 20
#: Pages in the write-ahead log from which a commit checkpoints it itself (SQLite's default is
#: 1,000): a bound, reached only when the background checkpoints fall behind or in a process
#: that does not run them (a command line).
SQLITE_AUTOCHECKPOINT = 8000
#: :meth:`Database.write_sync` transactions between two background checkpoints (~100 messages
#: of the delivery pipeline, in its usual groups of ~3).
CHECKPOINT_EVERY = 32
#: Execution option of every write connection: the :class:`Database` it belongs to, so code
#: handed only a connection (the audit trail's appends) reaches the node's keyring.
DATABASE_OPTION = "caducee_database"

#: SQLSTATE of PostgreSQL's « disk full » (class 53, insufficient resources).
_PG_DISK_FULL = "53100"
#: SQLSTATE classes meaning the server is gone or going: 08 connection exception, 57 operator
#: intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now).
_PG_UNAVAILABLE_CLASSES = ("08", "57")
#: SQLite's result code for « database or disk is full » (sqlite.org/rescode.html#full).
_SQLITE_FULL = 13


def storage_error(exc: BaseException) -> StorageFull | DatabaseUnavailable | None:
    """What ``exc`` (raised by the database driver or a file write) means to a user, when it is
    a full disk or a database out of reach; ``None`` for anything else."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, OSError) and orig.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull()
    if getattr(orig, "sqlite_errorcode", None) == _SQLITE_FULL:
        return StorageFull()
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == _PG_DISK_FULL:
        return StorageFull()
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return DatabaseUnavailable()
    if sqlstate and sqlstate[:2] in _PG_UNAVAILABLE_CLASSES:
        return DatabaseUnavailable()
    psycopg = sys.modules.get("psycopg")  # never imported for SQLite (24 MB with libpq)
    if sqlstate is None and psycopg is not None and isinstance(orig, psycopg.OperationalError):
        # refused or cut before any SQLSTATE: the server is not there
        return DatabaseUnavailable()
    return None


@contextmanager
def storage_errors() -> Iterator[None]:
    """Raise :class:`StorageFull` / :class:`DatabaseUnavailable` for what they mean; every
    other error passes unchanged."""
    try:
        yield
    except Exception as exc:
        meaning = storage_error(exc)
        if meaning is None:
            raise
        raise meaning from exc


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook emit BEGIN itself (pysqlite's own handling is off).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_PAGE_CACHE_KIB}")
    cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT}")
    cursor.close()


class Transactions(Protocol):
    """Runs ``work`` in one write transaction of its own, committed durably before it returns
    (:meth:`Database.write_sync_series`)."""

    def __call__(self, work: Callable[[Connection], T]) -> T: ...


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("caducee_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """Owns the engine; hands out read and write transactions."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._write_lock = asyncio.Lock()
        self._sync_engine: Engine | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._process_lock: int | None = None  # share_writes: a file locked across processes
        # background checkpoints (SQLite): their connection, the one running, the count
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_lock = threading.Lock()
        self._since_checkpoint = 0
        self.checkpoints = 0  # background checkpoints run, for tests
        #: The node's keyring (set by ``open_app``): the audit chain's key derives from it.
        self.keyring: Keyring | None = None
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
        with storage_errors():
            async with self.engine.connect() as conn, conn.begin():
                yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed durably on exit, rolled back on error.

        SQLite has one writer at a time: the writers of this process queue on a lock (woken
        in order as soon as the previous one commits) rather than on SQLite's busy handler,
        which polls with growing sleeps; so do the worker processes of a node between them
        (:meth:`share_writes`); other processes (a command line) meet the busy handler.
        """
        if self.is_sqlite:
            lock = self._sqlite_write_lock()
            try:
                await asyncio.wait_for(lock.acquire(), SQLITE_BUSY_TIMEOUT_MS / 1000)
            except TimeoutError:
                raise TemporaryFailure(
                    "Base de données occupée ; réessayez dans un instant.",
                    "Database busy; try again in a moment.",
                ) from None
            try:
                await self._lock_processes()
                try:
                    async with self._write_transaction() as conn:
                        yield conn
                finally:
                    self._unlock_processes()
            finally:
                lock.release()
        else:
            async with self._write_transaction() as conn:
                yield conn

    @asynccontextmanager
    async def _write_transaction(self) -> AsyncIterator[AsyncConnection]:
        with storage_errors():
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(caducee_write=True, **{DATABASE_OPTION: self})
                async with conn.begin():
                    yield conn

    async def write_sync(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction, committed durably, and return its result.

        ``work`` is plain synchronous code. On SQLite it runs whole in a worker thread on a
        synchronous connection: a transaction of several statements then costs one hand-over
        between threads instead of one per statement, each of which waits for the event loop.
        On PostgreSQL it runs on the async connection (``run_sync``).
        """
        if not self.is_sqlite:
            async with self._write_transaction() as conn:
                return await conn.run_sync(work)
        return await self.write_sync_series(lambda transact: transact(work))

    async def write_sync_series(self, series: Callable[[Transactions], R]) -> R:
        """SQLite: run ``series`` whole in one worker thread, holding the write lock; each call
        of the :class:`Transactions` it is given runs one write transaction, committed durably
        before it returns.

        Transactions that follow each other (the delivery pipeline's groups, while more wait)
        then cost one hand-over between threads for the series, not two per transaction: a
        thread hand-over waits for the event loop to let go of the interpreter lock, and each
        one was on the path of every message of the group. ``series`` should bound its length:
        the node's other writers wait meanwhile.
        """
        if not self.is_sqlite:
            # PostgreSQL has many writers at once: each group is its own write_sync
            raise TypeError("write_sync_series is for SQLite's single writer")
        lock = self._sqlite_write_lock()
        await lock.acquire()
        try:
            await self._lock_processes()
            try:
                return await asyncio.to_thread(series, self._sqlite_write)
            finally:
                self._unlock_processes()
        finally:
            lock.release()

    def share_writes(self, path: Path) -> None:
        """SQLite: this process is one of the worker processes of a node writing one file.
        Their writers queue on an ``flock`` of ``path``, handed over as soon as the previous
        transaction ends, instead of SQLite's busy handler, whose sleeps (1 ms growing to
        100 ms) left the file idle between two processes' commits."""
        self._process_lock = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    async def _lock_processes(self) -> None:
        fd = self._process_lock
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        locked = asyncio.get_running_loop().run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)
        try:
            await asyncio.shield(locked)
        except asyncio.CancelledError:
            # The thread still takes the lock: give it back as soon as it has.
            locked.add_done_callback(lambda _f: fcntl.flock(fd, fcntl.LOCK_UN))
            raise

    def _unlock_processes(self) -> None:
        if self._process_lock is not None:
            fcntl.flock(self._process_lock, fcntl.LOCK_UN)

    def _sqlite_write(self, work: Callable[[Connection], T]) -> T:
        if self._sync_engine is None:
            self._sync_engine = create_engine(
                self.url.replace("sqlite+aiosqlite:", "sqlite:", 1),
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                pool_size=1,
                max_overflow=2,
            )
            event.listen(self._sync_engine, "connect", _sqlite_on_connect)
            event.listen(self._sync_engine, "begin", _sqlite_on_begin)
        with storage_errors(), self._sync_engine.connect() as conn:
            conn = conn.execution_options(caducee_write=True, **{DATABASE_OPTION: self})
            with conn.begin():
                result = work(conn)
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY:
            self._start_checkpoint()
        return result

    def _start_checkpoint(self) -> None:
        """A passive checkpoint in a thread of its own, unless one is running."""
        if not self._checkpoint_lock.acquire(blocking=False):
            return
        self._since_checkpoint = 0
        thread = threading.Thread(target=self._checkpoint, name="sqlite-checkpoint", daemon=True)
        self._checkpointer = thread
        thread.start()

    def _checkpoint(self) -> None:
        try:
            if self._checkpoint_conn is None:
                assert self._sync_engine is not None
                path = self._sync_engine.url.database
                if not path or path == ":memory:":  # no log to copy back
                    return
                self._checkpoint_conn = sqlite3.connect(
                    path,
                    timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                    isolation_level=None,
                    check_same_thread=False,
                )
                self._checkpoint_conn.execute("PRAGMA synchronous=FULL")
            # PASSIVE: copies what no reader still needs, without waiting for anyone
            self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error as error:  # the next one, or a commit's own, will do it
            log.warning("sqlite checkpoint failed reason=%s", type(error).__name__)
        finally:
            self._checkpoint_lock.release()

    def _sqlite_write_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:  # an asyncio lock serves one event loop
            self._write_lock, self._lock_loop = asyncio.Lock(), loop
        return self._write_lock

    async def dispose(self) -> None:
        if self._process_lock is not None:
            os.close(self._process_lock)
            self._process_lock = None
        await self.engine.dispose()
        checkpointer = self._checkpointer
        if checkpointer is not None:
            await asyncio.to_thread(checkpointer.join)
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None
        if self._sync_engine is not None:
            self._sync_engine.dispose()


def inserted_id(result: CursorResult[Any]) -> int:
    """The integer primary key of the row an INSERT just created."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def insert_ignoring_conflicts(conn: AsyncConnection, table: Any, values: Any) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING`` for the connection's dialect (SQLite or PostgreSQL,
    the two backends Caducée runs on)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).values(values).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).values(values).on_conflict_do_nothing()
    raise NotImplementedError(conn.dialect.name)  # pragma: no cover - no third backend
