"""The data key of a scope that is not a mailbox (a practice's contacts or patients, API
tokens…), created on first use: read it when it exists, else create it in a write
transaction (creating it twice is harmless: ``ensure_data_key`` keeps the first)."""

from __future__ import annotations

from caducee.app import App
from caducee.store import queue_repo


async def scope_key(app: App, scope: str) -> bytes:
    async with app.db.read() as conn:
        if await queue_repo.has_data_key(conn, scope):
            return await app.keyring.data_key(conn, scope)
    async with app.db.write() as conn:
        await queue_repo.ensure_data_key(conn, app.keyring, scope)
        return await app.keyring.data_key(conn, scope)
