"""Backups inside a node: blob removals held while a backup copies, one backup at a time, the
scheduled backups of ``[backup]`` with their rotation, audited; the settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from caducee.app import App
from caducee.config import Settings, load_settings, render_config
from caducee.errors import ConfigurationError
from caducee.flows import maintenance
from caducee.services import audit, backup
from caducee.store import backup as archive
from caducee.store.blobs import DEFERRED_FILE, FileBlobStore, hold_removals
from tests.services.helpers import person, practice

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


async def test_blob_files_removed_during_a_backup_wait_for_its_end(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs", inline_max=0)
    blob_id = "ab" * 16
    await store.stage([(blob_id, b"sealed bytes")])
    path = store.path_of(blob_id)
    with hold_removals(store.root):
        await store.remove_files([blob_id])  # the expunge committed while a backup copies
        assert path.read_bytes() == b"sealed bytes"
        assert (store.root / DEFERRED_FILE).read_text().split() == [blob_id]
    assert not path.exists()  # removed when the backup let go
    assert not (store.root / DEFERRED_FILE).exists()
    other = "cd" * 16
    await store.stage([(other, b"x")])
    await store.remove_files([other])  # no backup: removed at once
    assert not store.path_of(other).exists()


async def test_a_second_backup_of_the_same_data_dir_is_refused(app: App, tmp_path: Path) -> None:
    await backup.create_key(app)
    with archive.backup_lock(app.settings), pytest.raises(ConfigurationError) as refused:
        await backup.back_up(app, tmp_path / "archives")
    assert "déjà en cours" in refused.value.fr
    assert not list((tmp_path / "archives").iterdir())  # no partial archive left


async def test_scheduled_backups_are_off_by_default_then_written_rotated_and_audited(
    app: App, tmp_path: Path
) -> None:
    assert await maintenance.run_once(
        app, tuple(t for t in maintenance.TASKS if t.name == "backup")
    ) == {"backup": 0}
    await practice(app)
    await person(app, "dr@cabinet.test")
    await backup.create_key(app)
    app.settings.backup_dir = str(tmp_path / "archives")
    app.settings.backup_hour = -1
    app.settings.backup_interval_hours = 1
    app.settings.backup_keep = 2
    assert await backup.scheduled(app, now=T0) == 1
    assert await backup.scheduled(app, now=T0 + timedelta(minutes=30)) == 0  # not due yet
    assert await backup.scheduled(app, now=T0 + timedelta(hours=2)) == 1
    assert await backup.scheduled(app, now=T0 + timedelta(hours=4)) == 1
    kept = [p.name for p in archive.archives(tmp_path / "archives")]
    assert kept == ["caducee-20261207T030000Z", "caducee-20261207T050000Z"]
    manifest = json.loads((tmp_path / "archives" / kept[-1] / "manifest.json").read_text())
    assert manifest["manifest"]["counts"]["mailboxes"] == 1
    assert manifest["manifest"]["backend"] in ("sqlite", "postgresql")
    actions = [r.action async for r in audit.iter_records(app.db) if r.action.startswith("backup.")]
    assert actions == [
        "backup.key_create",
        "backup.create",
        "backup.create",
        "backup.create",
        "backup.rotate",
    ]
    records = [r async for r in audit.iter_records(app.db) if r.action == "backup.create"]
    assert all("dr@" not in r.details for r in records)  # content-free: names and counts only
    assert (await audit.verify(app.db)).ok


def test_daily_backups_wait_for_their_hour() -> None:
    settings = Settings(data_dir=Path("/nonexistent"), backup_dir="/b", backup_hour=3)
    local = datetime.now().astimezone()
    at_three = local.replace(hour=3, minute=5).astimezone(UTC)
    assert backup.due(settings, None, at_three)
    assert not backup.due(settings, None, at_three + timedelta(hours=1))
    assert not backup.due(settings, at_three - timedelta(hours=2), at_three)
    assert backup.due(settings, at_three - timedelta(hours=23, minutes=30), at_three)


def test_backup_settings_are_read_checked_and_written(tmp_path: Path) -> None:
    (tmp_path / "caducee.toml").write_text(
        '[backup]\ndir = "/srv/sauvegardes"\ninterval_hours = 12\nhour = -1\nkeep = 14\n'
    )
    settings = load_settings(tmp_path)
    assert (settings.backup_dir, settings.backup_interval_hours) == ("/srv/sauvegardes", 12)
    assert (settings.backup_hour, settings.backup_keep) == (-1, 14)
    (tmp_path / "caducee.toml").write_text(render_config(settings))
    assert load_settings(tmp_path).backup_keep == 14
    (tmp_path / "caducee.toml").write_text("[backup]\nhour = 24\n")
    with pytest.raises(ConfigurationError) as refused:
        load_settings(tmp_path)
    assert "[backup]" in refused.value.fr
    assert Settings(data_dir=tmp_path).backup_dir == ""  # off by default
