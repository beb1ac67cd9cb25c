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

import ast
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, MetaData, String, Table, delete, insert, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from caducee.store.database import Database
from caducee.store.tables import schema_compat

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Alembic's own bookkeeping table (``alembic.runtime.migration``), read without importing
#: alembic: every node checks the schema when it opens the store, and alembic with its
#: templates costs about 11 MB of memory in each process that never migrates anything.
alembic_version = Table(
    "alembic_version", MetaData(), Column("version_num", String(32), primary_key=True)
)


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@dataclass(frozen=True)
class Migration:
    """What the schema check needs of one migration module, read from its source."""

    revision: str
    down_revision: str | None
    additive: bool


def _literal(module: ast.Module, name: str) -> object:
    """The constant a module assigns to ``name`` at its top level (None when it does not)."""
    for node in module.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in node.targets
        ):
            return ast.literal_eval(node.value)
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
            and node.value is not None
        ):
            return ast.literal_eval(node.value)
    return None


@functools.cache
def migrations() -> dict[str, Migration]:
    """This code's migration modules by revision, read as alembic's ``ScriptDirectory`` reads
    their identifiers (``revision``, ``down_revision``) but without executing them or importing
    alembic (see ``alembic_version``)."""
    found: dict[str, Migration] = {}
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        module = ast.parse(path.read_text(encoding="utf-8"), str(path))
        revision, down = _literal(module, "revision"), _literal(module, "down_revision")
        if not isinstance(revision, str):
            continue
        if down is not None and not isinstance(down, str):  # a merge point: none so far
            raise RuntimeError(f"{path.name}: down_revision {down!r} is not one revision")
        found[revision] = Migration(revision, down, _literal(module, "additive") is True)
    return found


def head_revision() -> str:
    """The revision no other migration revises (there must be exactly one)."""
    known = migrations()
    revised = {m.down_revision for m in known.values()}
    heads = sorted(set(known) - revised)
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {heads}")
    return heads[0]


def known_revisions() -> set[str]:
    """Every revision this code has a migration module for (its head and their ancestors)."""
    return set(migrations())


def oldest_compatible(revision: str | None = None) -> str:
    """The oldest code revision that may serve on a schema at ``revision`` (default: head):
    walking down from it, each migration marked ``additive`` lets the code before it serve."""
    known = migrations()
    current = revision or head_revision()
    while True:
        script = known.get(current)
        if script is None or script.down_revision is None or not script.additive:
            return current
        current = script.down_revision


async def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision, and record which code may serve on it."""

    def _run(conn: Connection) -> None:
        from alembic import command

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
        # what alembic's MigrationContext.get_current_revision() answers, one row at most
        if not inspect(conn).has_table(alembic_version.name):
            return None
        rows = conn.execute(select(alembic_version.c.version_num)).scalars().all()
        if len(rows) > 1:
            raise RuntimeError(f"alembic_version holds several revisions: {rows}")
        return rows[0] if rows else None

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
