"""A full disk (issue 20): the data dir of a real node on a small filesystem the test mounts
(tmpfs), holding the SQLite file and the blob files. Filled up during an SMTP load, the node
answers ``452 4.3.1`` and stores nothing half; reading goes on; once room returns the node
takes mail again by itself, every message acknowledged is whole, and SQLite's integrity check
passes. Mounting needs root, as CI runs: a machine without the right fails the test loudly."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from caducee.config import Settings
from tests.conftest import make_settings
from tests.dnsserver import LocalDNS
from tests.faults.load import (
    Load,
    check_read_back,
    imap_client,
    read_back,
    running,
    setup_account,
)

#: Size of the small filesystem; the node's own files take a few MB of it.
FILESYSTEM_MB = 48
#: Room left when the filler is written: a few large messages fit, then the disk is full.
LEFT_BYTES = 1_500_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    done = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={FILESYSTEM_MB}m,mode=0700",
            "tmpfs",
            str(mount_point),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"mounting a tmpfs needs root (CI runs as root): {done.stderr}"
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def small_settings(small_disk: Path, test_dns: LocalDNS) -> Settings:
    return make_settings(small_disk / "data", "sqlite", None, dns_resolver=test_dns.resolver_spec)


def fill(disk: Path, leave: int) -> Path:
    """A file taking all the room of ``disk`` but ``leave`` bytes."""
    filler = disk / "filler"
    stats = os.statvfs(disk)
    room = stats.f_bavail * stats.f_frsize - leave
    with filler.open("wb") as out:
        chunk = b"\0" * (1 << 20)
        while room > 0:
            out.write(chunk[: min(room, len(chunk))])
            room -= len(chunk)
    return filler


def test_a_full_disk_refuses_with_452_and_resumes(
    small_disk: Path, small_settings: Settings, tmp_path: Path
) -> None:
    settings = small_settings
    password = setup_account(settings, workers=1)
    with running(settings, tmp_path / "node") as node:
        # A session opened before: a new login must write its audit record, which a full
        # disk refuses (NO [UNAVAILABLE]); an open session reads on.
        session = imap_client(node, password)
        filler = fill(small_disk, LEFT_BYTES)
        load = Load(node.ports["smtp"], node.context(), connections=2).start()
        try:
            # Until the disk is full: 452 4.3.1, and the load goes on being refused.
            deadline_count = 400
            while not any(code == 452 for _, code, _ in load.replies):
                assert len(load.sent) < deadline_count, (load.replies[:3], load.cut)
                assert node.proc.poll() is None, "the node died"
                load.stop.wait(0.05)
            full = [(code, text) for _, code, text in load.replies]
            assert all(400 <= code < 500 for code, _ in full), full[:5]
            assert any(code == 452 and "4.3.1" in text for code, text in full), full[:5]
            acknowledged_when_full = load.count()
            # Reading goes on while the disk is full.
            found = read_back(node, password, session)
            assert set(load.acknowledged) <= set(found)
            # Room returns: the same load is accepted again, by itself.
            filler.unlink()
            load.wait_for(acknowledged_when_full + 20)
        finally:
            load.finish()
        assert node.proc.poll() is None
        found = read_back(node, password)
        check_read_back(load, found)
    print(
        f"disk full: {acknowledged_when_full} acknowledged before it was full, "
        f"{sum(1 for _, code, _ in load.replies if code == 452)} refused with 452, "
        f"{len(load.acknowledged)} acknowledged in all, {len(found)} read back"
    )
    database = settings.data_dir / "db.sqlite3"
    assert database.stat().st_size > 0
    with sqlite3.connect(f"file:{database}?mode=rw", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
