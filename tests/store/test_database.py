"""The store contract on both backends: migrations, transactions, blobs."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from caducee.app import App, check_schema
from caducee.errors import NotFound
from caducee.ids import new_blob_id
from caducee.store import migrate
from caducee.store.tables import audit_anchor, practices


async def test_migrations_reach_head(app: App) -> None:
    assert await migrate.current_revision(app.db) == migrate.head_revision()
    await check_schema(app.db)
    async with app.db.read() as conn:
        anchor = (await conn.execute(select(audit_anchor))).one()
    assert anchor.seq == 0 and anchor.hash == "0" * 64


async def test_failed_write_rolls_back(app: App) -> None:
    with pytest.raises(RuntimeError):
        async with app.db.write() as conn:
            await conn.execute(
                practices.insert().values(name="X", mailbox_limit=19, created_at=func.now())
            )
            raise RuntimeError("boom")
    async with app.db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(practices)) == 0


async def test_blob_roundtrip_and_delete(app: App) -> None:
    blob_id = new_blob_id()
    payload = bytes(range(256)) * 1000
    async with app.db.write() as conn:
        await app.blobs.put(conn, blob_id, payload)
    async with app.db.read() as conn:
        assert await app.blobs.get(conn, blob_id) == payload
    async with app.db.write() as conn:
        await app.blobs.delete(conn, blob_id)
    async with app.db.read() as conn:
        with pytest.raises(NotFound):
            await app.blobs.get(conn, blob_id)
