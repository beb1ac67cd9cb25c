"""Blob stores for raw messages and attachments (already sealed by the caller).

- :class:`FileBlobStore` (default): blobs up to ``inline_max`` bytes (100 KiB by default) are
  rows of the ``blobs`` table, written in the caller's transaction; larger ones are files under
  ``<data dir>/blobs/ab/cd/``, written and fsynced (with their directory) before the
  transaction that names them commits. SQLite's own measurements ("Internal Versus External
  BLOBs", sqlite.org/intern-v-extern-blob.html) find blobs under about 100 KB faster inside the
  database; and a group of deliveries then costs one fsync (the commit) instead of two per
  message. ``inline_max = 0`` keeps every blob in a file.
- :class:`DatabaseBlobStore`: every blob in the ``blobs`` table, for deployments where several
  nodes share one PostgreSQL database.

Every caller follows the same steps, whatever the store:

1. :meth:`~BlobStore.stage` before the transaction (what must be durable before it commits);
2. :meth:`~BlobStore.record` inside it; :meth:`~BlobStore.forget` inside the transaction that
   removes the rows naming blobs;
3. :meth:`~BlobStore.remove_files` after it: the staged files of a transaction that failed, or
   the files of forgotten blobs once the removal committed (a crash in between leaves a
   harmless orphan file, never a row naming a missing blob).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.errors import IntegrityError, NotFound
from caducee.store.batch_sql import insert_rows
from caducee.store.database import storage_error
from caducee.store.tables import blobs

_BLOB_ID = re.compile(r"^[0-9a-f]{32}$")
#: Default largest blob kept in the database by :class:`FileBlobStore`.
INLINE_MAX_BYTES = 100 * 1024

Blob = tuple[str, bytes]


def _check_id(blob_id: str) -> None:
    if not _BLOB_ID.match(blob_id):
        raise IntegrityError(
            f"Identifiant de blob invalide : {blob_id!r}.", f"Invalid blob id: {blob_id!r}."
        )


def _missing(blob_id: str) -> NotFound:
    return NotFound(
        f"Contenu introuvable (blob {blob_id}).", f"Content not found (blob {blob_id})."
    )


class BlobStore(Protocol):
    async def stage(self, items: Sequence[Blob]) -> None:
        """Before the transaction: make durable what must be on disk before it commits."""

    async def record(self, conn: AsyncConnection, items: Sequence[Blob]) -> None:
        """In the transaction: store what :meth:`stage` did not."""

    def record_sync(self, conn: Connection, items: Sequence[Blob]) -> None:
        """:meth:`record` inside a synchronous transaction (``Database.write_sync``)."""

    async def forget(self, conn: AsyncConnection, blob_ids: Iterable[str]) -> None:
        """In the transaction that removes the rows naming these blobs."""

    async def remove_files(self, blob_ids: Iterable[str]) -> None:
        """Outside any transaction: staged files no committed row names."""

    async def get(self, conn: AsyncConnection, blob_id: str) -> bytes: ...
    async def get_many(self, conn: AsyncConnection, blob_ids: list[str]) -> dict[str, bytes]: ...


_INSERT = insert(blobs)


async def _insert(conn: AsyncConnection, items: Sequence[Blob]) -> None:
    for blob_id, _ in items:
        _check_id(blob_id)
    if items:
        await conn.execute(_INSERT, [{"id": b, "data": d} for b, d in items])


def _insert_sync(conn: Connection, items: Sequence[Blob]) -> None:
    for blob_id, _ in items:
        _check_id(blob_id)
    insert_rows(conn, blobs, [{"id": b, "data": d} for b, d in items])


async def _forget_rows(conn: AsyncConnection, blob_ids: Iterable[str]) -> None:
    wanted = list(blob_ids)
    for start in range(0, len(wanted), 500):
        await conn.execute(delete(blobs).where(blobs.c.id.in_(wanted[start : start + 500])))


async def _rows(conn: AsyncConnection, blob_ids: list[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for blob_id in blob_ids:
        _check_id(blob_id)
    for start in range(0, len(blob_ids), 500):
        rows = await conn.execute(
            select(blobs.c.id, blobs.c.data).where(blobs.c.id.in_(blob_ids[start : start + 500]))
        )
        found.update((row.id, bytes(row.data)) for row in rows)
    return found


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: In the blob root: the lock a backup holds while it copies blob files, and the ids of the
#: files whose removal waited for it.
HOLD_FILE = ".backup-hold"
DEFERRED_FILE = ".deferred-removals"


def _open_hold(root: Path) -> int:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return os.open(root / HOLD_FILE, os.O_RDWR | os.O_CREAT, 0o600)


def remove_or_defer(root: Path, paths: Sequence[Path]) -> None:
    """Unlink ``paths`` (blob files no committed row names any more), or, while a backup holds
    removals, append their names to the deferred list.

    Race-free with :func:`hold_removals`: removal takes the hold file's lock shared (without
    waiting); a backup takes it exclusive, after which every removal defers. A removal that got
    the shared lock finishes before the backup's snapshot begins, and the rows naming those
    blobs were deleted before it (callers remove files only after their commit), so the
    snapshot never names a blob removed during the backup. The hold file exists once a backup
    has run (it stays: removing it would race); before, there is nothing to wait for.
    """
    try:
        fd = os.open(root / HOLD_FILE, os.O_RDWR)
    except FileNotFoundError:  # no backup ever ran here (one starting now snapshots later)
        _unlink_all(paths)
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = "".join(f"{path.name}\n" for path in paths).encode("ascii")
            deferred = os.open(root / DEFERRED_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(
                    deferred, text
                )  # one O_APPEND write: lines of concurrent callers stay whole
            finally:
                os.close(deferred)
            return
        _unlink_all(paths)
    finally:
        os.close(fd)  # releases the shared lock


def _unlink_all(paths: Sequence[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def hold_removals(root: Path) -> Iterator[None]:
    """While inside: no blob file under ``root`` is removed (removals are deferred). On the
    way out, the deferred removals are done."""
    fd = _open_hold(root)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits for removals under way (short)
        try:
            yield
        finally:
            remove_deferred(root)
    finally:
        os.close(fd)


def remove_deferred(root: Path) -> int:
    """Unlink the files whose removal a backup deferred; how many names were listed."""
    listed = root / DEFERRED_FILE
    taken = root / (DEFERRED_FILE + ".taken")
    try:
        os.replace(listed, taken)
    except FileNotFoundError:
        return 0
    names = [n for n in taken.read_text("ascii", errors="replace").split() if _BLOB_ID.match(n)]
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (root / name[:2] / name[2:4] / name).unlink()
    taken.unlink()
    return len(names)


def blob_files(root: Path) -> Iterator[Path]:
    """Every blob file under ``root`` (``ab/cd/<id>``), nothing else."""
    if not root.is_dir():
        return
    for first in sorted(root.iterdir()):
        if len(first.name) != 2 or not first.is_dir():
            continue
        for second in sorted(first.iterdir()):
            if len(second.name) != 2 or not second.is_dir():
                continue
            for path in sorted(second.iterdir()):
                if _BLOB_ID.match(path.name) and path.name.startswith(first.name + second.name):
                    yield path


class FileBlobStore:
    def __init__(self, root: Path, inline_max: int = INLINE_MAX_BYTES) -> None:
        self.root = root
        self.inline_max = inline_max

    def path_of(self, blob_id: str) -> Path:
        _check_id(blob_id)
        return self.root / blob_id[:2] / blob_id[2:4] / blob_id

    def _inline(self, items: Sequence[Blob]) -> list[Blob]:
        return [item for item in items if len(item[1]) <= self.inline_max]

    def _write(self, blob_id: str, data: bytes) -> None:
        """Create the blob's file, write it and fsync it, then fsync its directory.

        No temporary name and rename: nothing reads a blob before the row naming it commits,
        which happens only after this returns; a crash mid-write leaves an orphan file that no
        row names. Without a rename, the directory fsync finds the new entry already in the
        journal commit the file's fsync forced, so each blob costs one journal commit, not two.
        """
        final = self.path_of(blob_id)
        created = not final.parent.exists()
        if created:
            final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                final.unlink()
            raise
        os.close(fd)
        _fsync_dir(final.parent)
        if created:
            _fsync_dir(final.parent.parent)
            _fsync_dir(self.root)

    async def stage(self, items: Sequence[Blob]) -> None:
        """Write the large blobs as files, in parallel threads (concurrent fsyncs share
        journal commits)."""
        large = [item for item in items if len(item[1]) > self.inline_max]
        # every write ends before a failure is raised: the caller then removes what was staged
        outcomes = await asyncio.gather(
            *(asyncio.to_thread(self._write, b, d) for b, d in large), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise storage_error(outcome) or outcome from outcome

    async def record(self, conn: AsyncConnection, items: Sequence[Blob]) -> None:
        await _insert(conn, self._inline(items))

    def record_sync(self, conn: Connection, items: Sequence[Blob]) -> None:
        _insert_sync(conn, self._inline(items))

    async def forget(self, conn: AsyncConnection, blob_ids: Iterable[str]) -> None:
        await _forget_rows(conn, blob_ids)

    async def remove_files(self, blob_ids: Iterable[str]) -> None:
        """Unlink the files, unless a backup holds removals (see :func:`hold_removals`): then
        their ids are written down and the backup removes them when it is done."""
        paths = [self.path_of(blob_id) for blob_id in blob_ids]
        if paths:
            await asyncio.to_thread(remove_or_defer, self.root, paths)

    async def get(self, conn: AsyncConnection, blob_id: str) -> bytes:
        found = await self.get_many(conn, [blob_id])
        if blob_id not in found:
            raise _missing(blob_id)
        return found[blob_id]

    async def get_many(self, conn: AsyncConnection, blob_ids: list[str]) -> dict[str, bytes]:
        """Several blobs: the database's in one query, the files' in one worker-thread call;
        missing ones are left out."""
        found = await _rows(conn, blob_ids)
        on_disk = [self.path_of(b) for b in blob_ids if b not in found]

        def read_all() -> dict[str, bytes]:
            read: dict[str, bytes] = {}
            for path in on_disk:
                with contextlib.suppress(FileNotFoundError):
                    read[path.name] = path.read_bytes()
            return read

        if on_disk:
            found.update(await asyncio.to_thread(read_all))
        return found


class DatabaseBlobStore:
    async def stage(self, items: Sequence[Blob]) -> None:
        return None

    async def record(self, conn: AsyncConnection, items: Sequence[Blob]) -> None:
        await _insert(conn, items)

    def record_sync(self, conn: Connection, items: Sequence[Blob]) -> None:
        _insert_sync(conn, items)

    async def forget(self, conn: AsyncConnection, blob_ids: Iterable[str]) -> None:
        await _forget_rows(conn, blob_ids)

    async def remove_files(self, blob_ids: Iterable[str]) -> None:
        return None

    async def get(self, conn: AsyncConnection, blob_id: str) -> bytes:
        found = await _rows(conn, [blob_id])
        if blob_id not in found:
            raise _missing(blob_id)
        return found[blob_id]

    async def get_many(self, conn: AsyncConnection, blob_ids: list[str]) -> dict[str, bytes]:
        return await _rows(conn, blob_ids)
