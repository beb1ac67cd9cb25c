"""Multi-row INSERT and UPDATE (``store.batch_sql``) on both backends: every row lands, values
read back as SQLAlchemy's own statements would store them, only the named rows change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from caducee.app import App
from caducee.store.batch_sql import ROWS_PER_STATEMENT, insert_rows, update_rows
from caducee.store.tables import practices

COUNT = 2 * ROWS_PER_STATEMENT + 3  # three statements, the last one short
START = datetime(2026, 11, 29, 8, 30, 15, 123456, tzinfo=UTC)


def _row(i: int) -> dict[str, Any]:
    return {
        "id": 1000 + i,
        "name": f"Cabinet n°{i} « Étoile »",
        "mailbox_limit": i,
        "created_at": START + timedelta(minutes=i),
    }


async def _read(app: App) -> dict[int, tuple[str, int, datetime]]:
    async with app.db.read() as conn:
        rows = await conn.execute(
            select(
                practices.c.id, practices.c.name, practices.c.mailbox_limit, practices.c.created_at
            )
        )
        return {r.id: (r.name, r.mailbox_limit, r.created_at) for r in rows}


async def test_insert_rows_stores_what_sqlalchemy_would(app: App) -> None:
    def work(conn: Connection) -> None:
        conn.execute(insert(practices), [_row(-1)])  # the reference: SQLAlchemy's own INSERT
        insert_rows(conn, practices, [_row(i) for i in range(COUNT)])

    await app.db.write_sync(work)
    stored = await _read(app)
    assert len(stored) == COUNT + 1
    reference_name, _, reference_date = stored[999]
    assert reference_name == "Cabinet n°-1 « Étoile »"
    for i in range(COUNT):
        name, limit, created = stored[1000 + i]
        assert (name, limit) == (f"Cabinet n°{i} « Étoile »", i)
        assert created - reference_date == timedelta(minutes=i + 1)  # same storage format
        assert type(created) is type(reference_date)


async def test_update_rows_sets_or_adds_only_named_rows(app: App) -> None:
    await app.db.write_sync(
        lambda conn: insert_rows(conn, practices, [_row(i) for i in range(COUNT)])
    )
    chosen = range(0, COUNT, 2)  # every other row, over several statements

    def set_limits(conn: Connection) -> None:
        update_rows(conn, practices, "id", {1000 + i: {"mailbox_limit": 5000 + i} for i in chosen})

    await app.db.write_sync(set_limits)

    def add_to_limits(conn: Connection) -> None:
        update_rows(
            conn, practices, "id", {1000 + i: {"mailbox_limit": 7} for i in chosen}, add=True
        )

    await app.db.write_sync(add_to_limits)
    stored = await _read(app)
    for i in range(COUNT):
        assert stored[1000 + i][1] == (5007 + i if i % 2 == 0 else i), i
        assert stored[1000 + i][0] == f"Cabinet n°{i} « Étoile »"


async def test_rows_of_different_shapes_are_refused_and_nothing_is_written(app: App) -> None:
    def work(conn: Connection) -> None:
        insert_rows(conn, practices, [_row(0), {**_row(1), "finess": "123456789"}])

    with pytest.raises(ValueError):
        await app.db.write_sync(work)
    assert await _read(app) == {}

    def update(conn: Connection) -> None:
        update_rows(conn, practices, "id", {1: {"mailbox_limit": 1}, 2: {"name": "x"}})

    with pytest.raises(ValueError):
        await app.db.write_sync(update)


async def test_nothing_to_write_is_a_no_op(app: App) -> None:
    def work(conn: Connection) -> None:
        insert_rows(conn, practices, [])
        update_rows(conn, practices, "id", {})

    await app.db.write_sync(work)
    assert await _read(app) == {}
