"""Which blob ids some row still names: messages, the outbound queue, portal pickups.

Used by the sweep of orphan blob files (:mod:`caducee.services.blob_sweep`): a file staged by a
delivery whose transaction never committed (a crash, ``kill -9``, a full disk) is named by no
row and can go.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.tables import messages, outbound_messages, pickups

#: Ids per ``IN (...)`` list.
CHUNK = 500


async def named_blob_ids(conn: AsyncConnection, blob_ids: Sequence[str]) -> set[str]:
    """Those of ``blob_ids`` that a message, a queued message or a pickup names."""
    wanted = sorted(set(blob_ids))
    named: set[str] = set()
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        for column in (messages.c.blob_id, outbound_messages.c.blob_id, pickups.c.blob_id):
            rows = await conn.execute(select(column).where(column.in_(chunk)).distinct())
            named.update(str(value) for value in rows.scalars() if value)
    return named
