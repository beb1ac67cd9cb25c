"""A node killed with ``kill -9`` (supervisor and workers at once) in the middle of an SMTP load
over several connections: after a restart every message that got a ``250`` is read back over
IMAP, none is stored twice or half, the blob files the crash left behind are swept, and the
audit trail verifies. Both backends, real processes (issue 20)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from caducee.app import open_app
from caducee.config import Settings
from caducee.services.blob_sweep import sweep_orphan_files
from caducee.store import blob_refs_repo
from caducee.store.blobs import blob_files
from tests.faults.load import (
    Load,
    audit_verify,
    check_read_back,
    read_back,
    running,
    setup_account,
)
from tests.test_workers import worker_pids


def unnamed_blob_files(settings: Settings) -> list[str]:
    async def go() -> list[str]:
        names = [path.name for path in blob_files(settings.blobs_dir)]
        async with open_app(settings) as app, app.db.read() as conn:
            named = await blob_refs_repo.named_blob_ids(conn, names)
        return [name for name in names if name not in named]

    return asyncio.run(go())


def sweep(settings: Settings) -> int:
    async def go() -> int:
        async with open_app(settings) as app:
            return await sweep_orphan_files(app, grace_seconds=0)

    return asyncio.run(go())


def test_kill_9_during_an_smtp_load_loses_nothing_acknowledged(
    settings: Settings, tmp_path: Path
) -> None:
    password = setup_account(settings, workers=2)
    with running(settings, tmp_path / "first") as node:
        load = Load(node.ports["smtp"], node.context(), connections=4).start()
        try:
            load.wait_for(2000, timeout=400)  # a load of thousands, killed in its midst
            victims = [*worker_pids(node.proc.pid), node.proc.pid]
            for pid in victims:  # the whole node at once: nothing gets to clean up
                os.kill(pid, signal.SIGKILL)
            node.proc.wait(30)
        finally:
            load.finish()
    acknowledged = len(load.acknowledged)
    with running(settings, tmp_path / "second") as node:
        found = read_back(node, password)
        check_read_back(load, found)
        # The restarted node takes mail again.
        again = Load(node.ports["smtp"], node.context(), connections=1).start()
        try:
            again.wait_for(3)
        finally:
            again.finish()
    print(
        f"kill -9: {acknowledged} acknowledged, {len(found)} read back "
        f"({len(found) - acknowledged} stored whose 250 was lost with the connection), "
        f"{len(load.sent)} sent"
    )
    swept = sweep(settings)
    assert unnamed_blob_files(settings) == []
    print(f"kill -9: {swept} orphan blob files swept")
    verified = audit_verify(settings)
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # PostgreSQL keeps blobs in rows
def test_the_sweep_removes_only_old_unnamed_blob_files(settings: Settings, tmp_path: Path) -> None:
    """What the maintenance task does: a file named by a message stays, an unnamed file older
    than the grace period goes, a young unnamed one (a delivery about to commit) stays."""
    password = setup_account(settings, workers=1)
    with running(settings, tmp_path / "node") as node:
        load = Load(node.ports["smtp"], node.context(), connections=1).start()
        try:
            load.wait_for(6)  # one at least is large enough for a file (files store)
        finally:
            load.finish()
        found = read_back(node, password)
    check_read_back(load, found)
    named = list(blob_files(settings.blobs_dir))
    assert named  # the large messages are files
    old_orphan = settings.blobs_dir / "ab" / "cd" / ("abcd" + "0" * 28)
    young_orphan = settings.blobs_dir / "ab" / "cd" / ("abcd" + "1" * 28)
    for orphan in (old_orphan, young_orphan):
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"sealed bytes nobody names")
    os.utime(old_orphan, (1_000_000_000, 1_000_000_000))

    async def go() -> int:
        async with open_app(settings) as app:
            return await sweep_orphan_files(app)  # the task's own grace period

    assert asyncio.run(go()) == 1
    assert not old_orphan.exists() and young_orphan.exists()
    assert all(path.exists() for path in named)
    with running(settings, tmp_path / "after") as node:
        assert read_back(node, password).keys() == found.keys()
