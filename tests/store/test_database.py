"""The store contract on both backends: migrations, transactions, blobs."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from caducee.app import App, check_schema
from caducee.config import Settings
from caducee.errors import IntegrityError, NotFound
from caducee.ids import new_blob_id
from caducee.store import database, migrate
from caducee.store.blobs import FileBlobStore
from caducee.store.database import Database, Transactions
from caducee.store.tables import audit_anchor, blobs, practices
from tests.serving import clean_env


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


def test_revisions_read_as_alembic_reads_them() -> None:
    """The schema check reads the migration modules without alembic: the same head, the same
    revisions, each one's parent and ``additive`` mark as alembic's own reading."""
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    assert migrate.head_revision() == scripts.get_current_head()
    by_alembic = {s.revision: s for s in scripts.walk_revisions()}
    assert migrate.known_revisions() == set(by_alembic)
    for revision, read in migrate.migrations().items():
        script = by_alembic[revision]
        assert read.down_revision == script.down_revision
        assert read.additive is bool(getattr(script.module, "additive", False))


async def test_empty_database_has_no_revision(settings: Settings) -> None:
    db = Database(settings.effective_database_url)
    try:
        assert await migrate.current_revision(db) is None
        assert (await migrate.schema_state(db)).status == "empty"
    finally:
        await db.dispose()


async def test_node_checks_its_schema_without_alembic(app: App) -> None:
    """A serving node opens its store without importing alembic (about 11 MB per process):
    only ``caducee init`` and ``caducee migrate`` need it."""
    settings = app.settings
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "import caducee.server\n"
        "from caducee.app import open_app\n"
        "from caducee.config import Settings\n"
        "async def main():\n"
        f"    settings = Settings(data_dir=Path({str(settings.data_dir)!r}), "
        f"database_url={settings.database_url!r}, blob_store={settings.blob_store!r})\n"
        "    async with open_app(settings) as app:\n"
        "        print(app.db is not None)\n"
        "asyncio.run(main())\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'mako'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=clean_env()
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "[]"]


def blob_files(app: App) -> list[str]:
    return sorted(p.name for p in app.settings.blobs_dir.rglob("*") if p.is_file())


async def test_blob_lifecycle_small_and_large(app: App) -> None:
    """stage → record → get → forget → remove_files, for a blob kept in the database and one
    too large for it (a file with the default store)."""
    small = (new_blob_id(), bytes(range(256)) * 100)
    large = (new_blob_id(), bytes(range(256)) * (app.settings.blob_inline_max // 256 + 1))
    await app.blobs.stage([small, large])
    async with app.db.write() as conn:
        await app.blobs.record(conn, [small, large])
    async with app.db.read() as conn:
        assert await app.blobs.get(conn, small[0]) == small[1]
        assert await app.blobs.get_many(conn, [large[0], small[0], new_blob_id()]) == dict(
            [small, large]
        )
        stored_rows = set((await conn.execute(select(blobs.c.id))).scalars())
    if app.settings.blob_store == "files":
        assert blob_files(app) == [large[0]] and stored_rows == {small[0]}
    else:
        assert blob_files(app) == [] and stored_rows == {small[0], large[0]}
    async with app.db.write() as conn:
        await app.blobs.forget(conn, [small[0], large[0]])
    await app.blobs.remove_files([small[0], large[0]])
    assert blob_files(app) == []
    async with app.db.read() as conn:
        for blob_id, _ in (small, large):
            with pytest.raises(NotFound):
                await app.blobs.get(conn, blob_id)


async def test_staged_blobs_of_a_failed_transaction_are_removed(app: App) -> None:
    large = (new_blob_id(), b"x" * (app.settings.blob_inline_max + 1))
    small = (new_blob_id(), b"y" * 10)
    await app.blobs.stage([small, large])
    with pytest.raises(RuntimeError):
        async with app.db.write() as conn:
            await app.blobs.record(conn, [small, large])
            raise RuntimeError("boom")
    await app.blobs.remove_files([small[0], large[0]])
    assert blob_files(app) == []
    async with app.db.read() as conn:
        assert await app.blobs.get_many(conn, [small[0], large[0]]) == {}


async def test_a_failed_stage_leaves_nothing_once_removed(app: App) -> None:
    """One bad blob fails the stage only after the others are written: removing what was
    staged then leaves no file behind."""
    store = FileBlobStore(app.settings.blobs_dir)  # the store that stages files
    size = store.inline_max + 1
    good = [(new_blob_id(), b"g" * size) for _ in range(4)]
    with pytest.raises(IntegrityError, match="invalide"):
        await store.stage([*good, ("pas-un-identifiant", b"b" * size)])
    await store.remove_files([b for b, _ in good])
    assert blob_files(app) == []


async def test_every_blob_in_files_when_inlining_is_off(app: App) -> None:
    store = FileBlobStore(app.settings.blobs_dir, inline_max=0)
    blob = (new_blob_id(), b"z" * 10)
    await store.stage([blob])
    async with app.db.write() as conn:
        await store.record(conn, [blob])
    assert blob_files(app) == [blob[0]]
    async with app.db.read() as conn:
        assert await store.get(conn, blob[0]) == blob[1]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # PostgreSQL: write_sync
async def test_a_series_of_write_transactions_commits_each_in_one_thread(app: App) -> None:
    """``write_sync_series``: one worker thread, one transaction per call; a failed one is
    rolled back alone (SQLite; the delivery pipeline's groups)."""

    def add(name: str, fail: bool = False) -> Callable[[Connection], int]:
        def work(conn: Connection) -> int:
            conn.execute(
                practices.insert().values(name=name, mailbox_limit=1, created_at=func.now())
            )
            if fail:
                raise RuntimeError("boom")
            return threading.get_ident()

        return work

    def series(transact: Transactions) -> list[int | str]:
        done: list[int | str] = [transact(add("un"))]
        try:
            transact(add("deux", fail=True))
        except RuntimeError:
            done.append("failed")
        done.append(transact(add("trois")))
        return done

    first, failed, third = await app.db.write_sync_series(series)
    assert failed == "failed" and first == third  # the same thread for the whole series
    async with app.db.read() as conn:
        names = set((await conn.scalars(select(practices.c.name))).all())
    assert names == {"un", "trois"}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # PostgreSQL checkpoints itself
async def test_checkpoints_run_beside_the_commits(app: App) -> None:
    """Every CHECKPOINT_EVERY ``write_sync`` transactions, a passive checkpoint runs in a
    thread of its own instead of in a commit (SQLite); commits keep SQLite's own as a bound."""

    def work(conn: Connection) -> int:
        conn.execute(practices.insert().values(name="x", mailbox_limit=1, created_at=func.now()))
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())

    count = database.CHECKPOINT_EVERY + 1
    bound = [await app.db.write_sync(work) for _ in range(count)]
    assert bound == [database.SQLITE_AUTOCHECKPOINT] * count
    checkpointer = app.db._checkpointer
    assert checkpointer is not None
    checkpointer.join(10)
    assert app.db.checkpoints >= 1
