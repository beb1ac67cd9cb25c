"""Blob stores for raw messages and attachments (already sealed by the caller).

- :class:`FileBlobStore` (default): one file per blob under ``<data dir>/blobs/ab/cd/``, written,
  fsynced and its directory fsynced, so that a blob is on disk before the transaction that
  references it commits.
- :class:`DatabaseBlobStore`: a ``blobs`` table, written in the caller's transaction, for
  deployments where several nodes share one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path
from typing import Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.errors import IntegrityError, NotFound
from caducee.store.tables import blobs

_BLOB_ID = re.compile(r"^[0-9a-f]{32}$")


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
    #: True when put() writes inside the caller's transaction (else: durable before it commits).
    transactional: bool

    async def put(self, conn: AsyncConnection, blob_id: str, data: bytes) -> None: ...
    async def put_many(
        self, conn: AsyncConnection | None, items: list[tuple[str, bytes]]
    ) -> None: ...
    def put_many_sync(self, conn: Connection, items: list[tuple[str, bytes]]) -> None: ...
    async def get(self, conn: AsyncConnection, blob_id: str) -> bytes: ...
    async def get_many(self, conn: AsyncConnection, blob_ids: list[str]) -> dict[str, bytes]: ...
    async def delete(self, conn: AsyncConnection, blob_id: str) -> None: ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileBlobStore:
    transactional = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, blob_id: str) -> Path:
        _check_id(blob_id)
        return self.root / blob_id[:2] / blob_id[2:4] / blob_id

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

    async def put(self, conn: AsyncConnection | None, blob_id: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, blob_id, data)

    async def put_many(self, conn: AsyncConnection | None, items: list[tuple[str, bytes]]) -> None:
        """Write blobs in parallel threads: concurrent fsyncs share journal commits."""
        await asyncio.gather(*(asyncio.to_thread(self._write, b, d) for b, d in items))

    def put_many_sync(self, conn: Connection | None, items: list[tuple[str, bytes]]) -> None:
        for blob_id, data in items:
            self._write(blob_id, data)

    async def get(self, conn: AsyncConnection | None, blob_id: str) -> bytes:
        try:
            return await asyncio.to_thread(self.path_of(blob_id).read_bytes)
        except FileNotFoundError:
            raise _missing(blob_id) from None

    async def get_many(self, conn: AsyncConnection | None, blob_ids: list[str]) -> dict[str, bytes]:
        """Several blobs read in one worker-thread call; missing ones are left out."""

        def read_all() -> dict[str, bytes]:
            found: dict[str, bytes] = {}
            for blob_id in blob_ids:
                with contextlib.suppress(FileNotFoundError):
                    found[blob_id] = self.path_of(blob_id).read_bytes()
            return found

        return await asyncio.to_thread(read_all)

    async def delete(self, conn: AsyncConnection | None, blob_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self.path_of(blob_id).unlink)


class DatabaseBlobStore:
    transactional = True

    async def put(self, conn: AsyncConnection, blob_id: str, data: bytes) -> None:
        _check_id(blob_id)
        await conn.execute(insert(blobs).values(id=blob_id, data=data))

    async def put_many(self, conn: AsyncConnection | None, items: list[tuple[str, bytes]]) -> None:
        assert conn is not None, "database blobs are written in the caller's transaction"
        for blob_id, _ in items:
            _check_id(blob_id)
        if items:
            await conn.execute(insert(blobs), [{"id": b, "data": d} for b, d in items])

    def put_many_sync(self, conn: Connection, items: list[tuple[str, bytes]]) -> None:
        """Inside a synchronous write transaction (``Database.write_sync``)."""
        for blob_id, _ in items:
            _check_id(blob_id)
        if items:
            conn.execute(insert(blobs), [{"id": b, "data": d} for b, d in items])

    async def get(self, conn: AsyncConnection, blob_id: str) -> bytes:
        _check_id(blob_id)
        data = await conn.scalar(select(blobs.c.data).where(blobs.c.id == blob_id))
        if data is None:
            raise _missing(blob_id)
        return bytes(data)

    async def get_many(self, conn: AsyncConnection, blob_ids: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for blob_id in blob_ids:
            _check_id(blob_id)
        for start in range(0, len(blob_ids), 500):
            rows = await conn.execute(
                select(blobs.c.id, blobs.c.data).where(
                    blobs.c.id.in_(blob_ids[start : start + 500])
                )
            )
            found.update((row.id, bytes(row.data)) for row in rows)
        return found

    async def delete(self, conn: AsyncConnection, blob_id: str) -> None:
        await conn.execute(delete(blobs).where(blobs.c.id == blob_id))
