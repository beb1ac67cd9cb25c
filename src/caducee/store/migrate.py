"""Alembic migrations, run from Python (``caducee init``, ``serve`` and ``doctor`` call these).

Rolling upgrades (issue 20): a migration module may say ``additive = True`` (it only adds
tables, nullable columns or columns with a default, indexes: code of the revision before it
keeps working on the new schema). After an upgrade, :func:`upgrade` records in
``schema_compat`` the oldest code revision that may still serve on the schema — the revision
before the newest unbroken run of additive migrations — so that nodes of that older code, which
do not know the new migration modules, can read from the database whether they may keep
serving (:func:`schema_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from caducee.store.database import Database
from caducee.store.tables import schema_compat

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    """Every revision this code has a migration module for (its head and their ancestors)."""
    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def oldest_compatible(revision: str | None = None) -> str:
    """The oldest code revision that may serve on a schema at ``revision`` (default: head):
    walking down from it, each migration marked ``additive`` lets the code before it serve."""
    scripts = ScriptDirectory.from_config(alembic_config())
    current = revision or head_revision()
    while True:
        script = scripts.get_revision(current)
        down = script.down_revision if script is not None else None
        if (
            script is None
            or not isinstance(down, str)
            or not getattr(script.module, "additive", False)
        ):
            return current
        current = down


async def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision, and record which code may serve on it."""

    def _run(conn: Connection) -> None:
        command.upgrade(alembic_config(conn), "head")

    async with db.write() as conn:
        await conn.run_sync(_run)
        await conn.execute(delete(schema_compat))
        await conn.execute(
            insert(schema_compat).values(
                revision=head_revision(), oldest_compatible=oldest_compatible()
            )
        )


async def current_revision(db: Database) -> str | None:
    def _read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with db.read() as conn:
        return await conn.run_sync(_read)


@dataclass(frozen=True)
class SchemaState:
    """Where the database's schema stands against this code's migrations."""

    current: str | None
    head: str
    #: "same", "empty", "behind" (the code expects a newer schema: run ``caducee migrate``),
    #: "ahead_compatible" (a newer schema whose newer migrations are all additive: this code
    #: may keep serving), "ahead" (a newer schema this code must not serve on)
    status: str
    oldest_compatible: str | None = None


async def schema_state(db: Database) -> SchemaState:
    """Compare the database's revision with this code's head (see the module's docstring)."""
    current, head = await current_revision(db), head_revision()
    if current == head:
        return SchemaState(current, head, "same")
    if current is None:
        return SchemaState(current, head, "empty")
    known = known_revisions()
    if current in known:
        return SchemaState(current, head, "behind")
    try:
        async with db.read() as conn:
            floor = await conn.scalar(
                select(schema_compat.c.oldest_compatible).where(schema_compat.c.revision == current)
            )
    except SQLAlchemyError:  # a schema from before the table: nothing says it is compatible
        floor = None
    if floor is not None and floor in known:
        return SchemaState(current, head, "ahead_compatible", str(floor))
    return SchemaState(current, head, "ahead", None if floor is None else str(floor))
