"""The S3 blob store (issue 20) against a local S3 server (moto's, over HTTP), on both metadata
backends: large blobs are objects named by their random id, sealed before upload, small ones
rows; every removal (expunge, a mailbox's deletion, orphans) deletes objects; removals wait for
a backup; an unreachable store refuses (StorageUnavailable) and comes back with everything."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from caducee.app import App, open_app
from caducee.config import Settings, load_settings, render_config
from caducee.domain.model import MailboxType
from caducee.errors import ConfigurationError, StorageUnavailable
from caducee.flows import maintenance
from caducee.ids import new_blob_id
from caducee.services import lifecycle, mailboxes, messages
from caducee.services.delivery import deliver_local
from caducee.store import s3_blobs
from caducee.store.keyring import mailbox_scope
from caducee.store.s3_blobs import S3BlobStore
from tests.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, LocalS3, local_s3, use_s3
from tests.services.helpers import person, practice

ORPHAN_TASK = tuple(t for t in maintenance.TASKS if t.name == "orphan-objects")
OWNER = "dr@cabinet.test"
SHARED = "accueil@cabinet.test"
MARKER = b"Compte-rendu-operatoire-confidentiel"
BIG = b"Subject: Compte rendu\r\n\r\n" + MARKER + b"\r\n" + b"x" * 300_000 + b"\r\n"
SMALL = b"Subject: Bonjour\r\n\r\nPetit message.\r\n"


@pytest.fixture(scope="module")
def s3() -> Iterator[LocalS3]:
    with local_s3() as server:
        yield server


@pytest.fixture
async def s3_app(settings: Settings, s3: LocalS3) -> AsyncIterator[App]:
    if not s3.running:
        s3.start()
    use_s3(settings, s3, prefix="caducee/", inline_max=100 * 1024)
    async with open_app(settings, upgrade=True) as opened:
        assert isinstance(opened.blobs, S3BlobStore)
        yield opened


def store(app: App) -> S3BlobStore:
    assert isinstance(app.blobs, S3BlobStore)
    return app.blobs


def objects(s3: LocalS3, settings: Settings) -> dict[str, bytes]:
    client = s3.client()
    return {
        key: client.get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read()
        for key in s3.keys(settings.s3_bucket)
    }


async def test_large_blobs_are_sealed_objects_under_their_random_id(
    s3_app: App, s3: LocalS3
) -> None:
    settings = s3_app.settings
    await practice(s3_app)
    await person(s3_app, OWNER)
    [big] = await deliver_local(s3_app, BIG, [OWNER])
    [small] = await deliver_local(s3_app, SMALL, [OWNER])
    stored = objects(s3, settings)
    # One object, the large message's: its key is the random blob id, nothing of the content.
    b = big.blob_id
    assert list(stored) == [f"caducee/{b[:2]}/{b[2:4]}/{b}"]
    [sealed] = stored.values()
    assert MARKER not in sealed and b"Compte rendu" not in sealed  # ciphertext only
    async with s3_app.db.read() as conn:
        assert await s3_app.blobs.get(conn, b) == sealed
        opened = await s3_app.keyring.open(conn, mailbox_scope(big.mailbox_id), b, "raw", sealed)
        assert opened.endswith(BIG)
    # Both read back through the service every door calls.
    assert (await messages.read_message(s3_app, big.id))[1].endswith(BIG)
    assert (await messages.read_message(s3_app, small.id))[1].endswith(SMALL)


async def test_expunge_and_mailbox_deletion_delete_the_objects(s3_app: App, s3: LocalS3) -> None:
    settings = s3_app.settings
    await practice(s3_app)
    await person(s3_app, OWNER)
    await mailboxes.add_mailbox(s3_app, SHARED, MailboxType.ORG, OWNER)
    [first] = await deliver_local(s3_app, BIG, [OWNER])
    [second] = await deliver_local(s3_app, BIG, [OWNER])
    for raw in (BIG, SMALL, BIG):
        await deliver_local(s3_app, raw, [SHARED])
    assert len(objects(s3, settings)) == 4
    removed = await messages.expunge_messages(
        s3_app, first.folder_id, [first.id], actor=OWNER, source="test"
    )
    assert removed == 1
    b = second.blob_id
    assert list(objects(s3, settings)) != [] and all(
        first.blob_id not in key for key in objects(s3, settings)
    )
    await lifecycle.delete_mailbox(s3_app, SHARED, confirm=SHARED)
    assert list(objects(s3, settings)) == [f"caducee/{b[:2]}/{b[2:4]}/{b}"]


async def test_removals_wait_for_a_backup_then_happen(s3_app: App, s3: LocalS3) -> None:
    settings = s3_app.settings
    await practice(s3_app)
    await person(s3_app, OWNER)
    [big] = await deliver_local(s3_app, BIG, [OWNER])
    with s3_blobs.hold_removals(settings) as client:
        await messages.expunge_messages(s3_app, big.folder_id, [big.id], actor=OWNER, source="test")
        # Still there for the backup (whichever node removed it), its removal written down.
        assert big.blob_id in list(s3_blobs.object_blob_ids(client, settings))
        assert f"caducee/.caducee/deferred/{big.blob_id}" in s3.keys(settings.s3_bucket)
    assert s3.keys(settings.s3_bucket) == []  # done when the backup let go, markers too


async def test_orphan_objects_are_swept_named_ones_kept(s3_app: App, s3: LocalS3) -> None:
    settings = s3_app.settings
    await practice(s3_app)
    await person(s3_app, OWNER)
    [kept] = await deliver_local(s3_app, BIG, [OWNER])
    orphan = new_blob_id()  # an upload whose delivery never committed
    await s3_app.blobs.stage([(orphan, b"\x00" * 200_000)])
    assert len(s3.keys(settings.s3_bucket)) == 2
    # Younger than the grace period: may belong to a delivery under way (the maintenance
    # task, every node's, leaves it).
    assert await maintenance.run_once(s3_app, ORPHAN_TASK) == {"orphan-objects": 0}
    assert len(s3.keys(settings.s3_bucket)) == 2
    assert await store(s3_app).sweep_orphans(s3_app.db, timedelta(seconds=-5)) == 1
    b = kept.blob_id
    assert s3.keys(settings.s3_bucket) == [f"caducee/{b[:2]}/{b[2:4]}/{b}"]


async def test_an_unreachable_store_refuses_then_comes_back_whole(
    s3_app: App, s3: LocalS3, caplog: pytest.LogCaptureFixture
) -> None:
    settings = s3_app.settings
    await practice(s3_app)
    await person(s3_app, OWNER)
    [big] = await deliver_local(s3_app, BIG, [OWNER])
    [small] = await deliver_local(s3_app, SMALL, [OWNER])
    caplog.set_level(logging.DEBUG)
    s3.stop()
    try:
        with pytest.raises(StorageUnavailable) as refused:
            await deliver_local(s3_app, BIG, [OWNER])
        assert "réessayez plus tard" in refused.value.fr
        with pytest.raises(StorageUnavailable):
            await messages.read_message(s3_app, big.id)
        with pytest.raises(StorageUnavailable):
            await store(s3_app).check()
        # Inline blobs need no object store; a removal's failure leaves an orphan, no error.
        assert (await messages.read_message(s3_app, small.id))[1].endswith(SMALL)
        await s3_app.blobs.remove_files([new_blob_id()])
    finally:
        s3.start()
    assert (await messages.read_message(s3_app, big.id))[1].endswith(BIG)
    [again] = await deliver_local(s3_app, BIG, [OWNER])
    assert (await messages.read_message(s3_app, again.id))[1].endswith(BIG)
    await store(s3_app).check()
    assert len(s3.keys(settings.s3_bucket)) == 2  # the refused delivery left nothing
    logged = caplog.text
    assert SECRET_ACCESS_KEY not in logged and ACCESS_KEY_ID not in logged


def test_settings_read_the_credentials_file_never_the_toml(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    settings.blob_store = "s3"
    settings.s3_bucket = "courrier"
    settings.s3_endpoint = "https://s3.hds.example"
    settings.s3_credentials_file = "s3.toml"
    (tmp_path / "caducee.toml").write_text(render_config(settings), "utf-8")
    assert SECRET_ACCESS_KEY not in render_config(settings)
    with pytest.raises(ConfigurationError, match="identifiants S3"):
        load_settings(tmp_path)
    (tmp_path / "s3.toml").write_text(
        f'access_key_id = "{ACCESS_KEY_ID}"\nsecret_access_key = "{SECRET_ACCESS_KEY}"\n'
    )
    loaded = load_settings(tmp_path)
    assert (loaded.blob_store, loaded.s3_bucket, loaded.s3_endpoint) == (
        "s3",
        "courrier",
        "https://s3.hds.example",
    )
    assert (loaded.s3_access_key_id, loaded.s3_secret_access_key) == (
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
    )
    assert SECRET_ACCESS_KEY not in repr(loaded)
    settings.s3_bucket = ""
    (tmp_path / "caducee.toml").write_text(render_config(settings), "utf-8")
    with pytest.raises(ConfigurationError, match="s3_bucket"):
        load_settings(tmp_path)
