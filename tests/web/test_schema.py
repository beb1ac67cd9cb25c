"""Migration 0004 creates exactly the web tables that ``store/tables.py`` declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from caducee.app import App
from caducee.store.tables import metadata

WEB_TABLES = {"web_sessions", "web_recovery_codes", "webauthn_credentials", "web_practice_settings"}


async def test_web_tables_match_the_migration(app: App) -> None:
    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with app.db.read() as conn:
        changes = await conn.run_sync(diff)

    def touches_web(change: object) -> bool:
        text = repr(change)
        return any(name in text for name in WEB_TABLES)

    assert [c for c in changes if touches_web(c)] == []
