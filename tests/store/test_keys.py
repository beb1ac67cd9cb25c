"""Master key handling: file permissions, rotation without downtime, environment keys."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from caducee.app import App, open_app
from caducee.config import Settings
from caducee.domain.model import MailboxType
from caducee.errors import ConfigurationError, IntegrityError
from caducee.services import mailboxes, messages
from caducee.store.crypto import SLICE, MasterKey, open_sealed, seal
from caducee.store.keyring import ENV_KEY, ENV_PREVIOUS, load_master_keys, rotate_master_key
from caducee.store.tables import data_keys
from tests.services.helpers import person, practice


def test_key_file_readable_by_others_is_refused(settings: Settings) -> None:
    os.chmod(settings.master_key_path, 0o644)
    with pytest.raises(ConfigurationError) as caught:
        load_master_keys(settings)
    assert "chmod 600" in caught.value.fr and str(settings.master_key_path) in caught.value.fr


def test_missing_key_is_refused(settings: Settings) -> None:
    settings.master_key_path.unlink()
    with pytest.raises(ConfigurationError, match="caducee init"):
        load_master_keys(settings)


async def test_rotation_rewraps_while_a_node_keeps_running(app: App, settings: Settings) -> None:
    await practice(app)
    _, box = await person(app, "dr@cabinet.test")
    before = await messages.store_message(app, box.id, "INBOX", b"Subject: avant\r\n\r\ncorps\r\n")
    old_id = app.keyring.keys.current.key_id

    old, new, count = await rotate_master_key(app.db, settings, grace_seconds=0)
    async with app.db.read() as conn:
        wrapping = (await conn.execute(select(data_keys.c.master_key_id))).scalars().all()
    assert old == old_id and count == len(wrapping) >= 1
    assert set(wrapping) == {new}
    assert new != old and load_master_keys(settings).current.key_id == new
    assert not (settings.keys_dir / "previous" / f"{old}.key").exists()
    assert oct(settings.master_key_path.stat().st_mode & 0o777) == "0o600"

    # The running node (app) still serves, and wraps new data keys with the new master key.
    owner = (await mailboxes.list_mailboxes(app))[0].address
    created = await mailboxes.add_mailbox(app, "org@cabinet.test", MailboxType.ORG, owner)
    await messages.store_message(app, created.id, "INBOX", b"Subject: apres\r\n\r\ncorps\r\n")

    # A fresh node, with only the new key on disk, reads everything.
    async with open_app(settings) as fresh:
        assert fresh.keyring.keys.previous == []
        message, raw = await messages.read_message(fresh, before.id)
        assert raw.endswith(b"corps\r\n") and message.meta["subject"] == "avant"


async def test_rotation_with_environment_keys(
    app: App, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await practice(app)
    _, box = await person(app, "dr@cabinet.test")
    stored = await messages.store_message(app, box.id, "INBOX", b"Subject: env\r\n\r\nx\r\n")
    old_key = settings.master_key_path.read_text().strip()
    new_key = MasterKey.generate()
    monkeypatch.setenv(ENV_KEY, new_key.encoded())
    monkeypatch.setenv(ENV_PREVIOUS, old_key)
    with pytest.raises(ConfigurationError, match="rewrap-only"):
        await rotate_master_key(app.db, settings)
    from caducee.store.keyring import Keyring, rewrap_all

    assert await rewrap_all(app.db, Keyring(settings)) >= 1
    monkeypatch.delenv(ENV_PREVIOUS)
    settings.master_key_path.unlink()
    async with open_app(settings) as fresh:
        assert (await messages.read_message(fresh, stored.id))[0].meta["subject"] == "env"


@pytest.mark.parametrize("size", [0, 100, SLICE - 1, SLICE, 3 * SLICE + 17])
def test_big_data_sealed_a_slice_at_a_time_is_the_same_aes_gcm(size: int) -> None:
    """A big record is sealed and opened a slice at a time (issue 17): the format is the one
    AES-GCM call's, either side opens what the other sealed, and a changed octet or another
    record's associated data is refused."""
    key, data = os.urandom(32), os.urandom(size)
    sealed = seal(key, data, b"mbox:1|blob|raw")
    nonce, body = sealed[1:13], sealed[13:]
    assert AESGCM(key).decrypt(nonce, body, b"mbox:1|blob|raw") == data
    one_call = b"\x01" + nonce + AESGCM(key).encrypt(nonce, data, b"mbox:1|blob|raw")
    assert open_sealed(key, one_call, b"mbox:1|blob|raw") == data
    tampered = bytearray(sealed)
    tampered[-1 if size == 0 else 20] ^= 1
    for bad, aad in ((bytes(tampered), b"mbox:1|blob|raw"), (sealed, b"mbox:2|blob|raw")):
        with pytest.raises(IntegrityError):
            open_sealed(key, bad, aad)
