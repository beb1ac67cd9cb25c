"""Master keys and per-scope data keys (envelope encryption).

Master keys come from ``CADUCEE_MASTER_KEY`` or ``<data dir>/keys/master.key`` (mode 0600);
previous master keys, kept while a rotation is under way, from ``CADUCEE_MASTER_KEY_PREVIOUS``
(comma-separated) or ``keys/previous/*.key``. Each data key row records which master key wraps
it, so a running node can read rows wrapped by either key during a rotation; it re-reads the key
files when it meets an unknown key id and before it wraps a new data key.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.config import Settings
from caducee.errors import ConfigurationError, IntegrityError
from caducee.store.crypto import (
    KEY_BYTES,
    SLICE,
    MasterKey,
    aad_for,
    load_key_file,
    open_sealed,
    seal,
    write_private_file,
)
from caducee.store.database import Database
from caducee.store.tables import data_keys

SYSTEM_SCOPE = "system"
ENV_KEY = "CADUCEE_MASTER_KEY"
ENV_PREVIOUS = "CADUCEE_MASTER_KEY_PREVIOUS"


def mailbox_scope(mailbox_id: int) -> str:
    return f"mailbox:{mailbox_id}"


@dataclass
class MasterKeys:
    current: MasterKey
    previous: list[MasterKey]
    from_env: bool

    def by_id(self) -> dict[str, MasterKey]:
        keys = {k.key_id: k for k in self.previous}
        keys[self.current.key_id] = self.current
        return keys


def load_master_keys(settings: Settings) -> MasterKeys:
    """Read the master keys; refuse a missing key or a key file others can read."""
    env_key = os.environ.get(ENV_KEY, "").strip()
    previous: list[MasterKey] = []
    for part in os.environ.get(ENV_PREVIOUS, "").split(","):
        if part.strip():
            previous.append(MasterKey.decode(part, ENV_PREVIOUS))
    prev_dir = settings.keys_dir / "previous"
    if prev_dir.is_dir():
        previous += [load_key_file(p) for p in sorted(prev_dir.glob("*.key"))]
    if env_key:
        return MasterKeys(MasterKey.decode(env_key, ENV_KEY), previous, from_env=True)
    path = settings.master_key_path
    if not path.exists():
        raise ConfigurationError(
            f"Clé maîtresse introuvable ({path}). Créez l'installation avec « caducee init » "
            f"ou fournissez la variable {ENV_KEY}.",
            f"Master key not found ({path}). Create the installation with 'caducee init' "
            f"or set {ENV_KEY}.",
        )
    return MasterKeys(load_key_file(path), previous, from_env=False)


def create_master_key_file(settings: Settings) -> MasterKey:
    key = MasterKey.generate()
    write_private_file(settings.master_key_path, key.encoded() + "\n")
    return key


class Keyring:
    """Seals and opens data with per-scope data keys; caches unwrapped data keys in memory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = load_master_keys(settings)
        self._data_keys: dict[str, bytes] = {}
        self._lock = asyncio.Lock()

    def reload(self) -> None:
        self.keys = load_master_keys(self.settings)

    def _master(self, key_id: str) -> MasterKey:
        key = self.keys.by_id().get(key_id)
        if key is None:
            self.reload()
            key = self.keys.by_id().get(key_id)
        if key is None:
            raise IntegrityError(
                f"La clé maîtresse {key_id} qui protège ces données est introuvable.",
                f"Master key {key_id} protecting this data is missing.",
            )
        return key

    async def create_data_key(self, conn: AsyncConnection, scope: str) -> bytes:
        """Create and store the data key of a new scope (in the caller's transaction)."""
        self.reload()
        data_key = os.urandom(KEY_BYTES)
        master = self.keys.current
        await conn.execute(
            insert(data_keys).values(
                scope=scope,
                master_key_id=master.key_id,
                wrapped=master.wrap(data_key, scope),
                created_at=datetime.now(UTC),
            )
        )
        return data_key

    def cached_key(self, scope: str) -> bytes | None:
        """The data key of ``scope`` if this node has already opened it (no database read)."""
        return self._data_keys.get(scope)

    async def data_key(self, conn: AsyncConnection, scope: str) -> bytes:
        cached = self._data_keys.get(scope)
        if cached is not None:
            return cached
        row = (
            await conn.execute(
                select(data_keys.c.master_key_id, data_keys.c.wrapped).where(
                    data_keys.c.scope == scope
                )
            )
        ).first()
        if row is None:
            if scope != SYSTEM_SCOPE:
                raise IntegrityError(
                    f"Aucune clé de données pour {scope}.", f"No data key for {scope}."
                )
            key = await self.create_data_key(conn, scope)
        else:
            key = self._master(row.master_key_id).unwrap(bytes(row.wrapped), scope)
        self._data_keys[scope] = key
        return key

    async def seal(
        self, conn: AsyncConnection, scope: str, record: str, field: str, plaintext: bytes
    ) -> bytes:
        key = await self.data_key(conn, scope)
        if len(plaintext) >= SLICE:  # a slice at a time in a thread: the loop runs between
            return await asyncio.to_thread(seal, key, plaintext, aad_for(scope, record, field))
        return seal(key, plaintext, aad_for(scope, record, field))

    async def open(
        self, conn: AsyncConnection, scope: str, record: str, field: str, sealed: bytes
    ) -> bytes:
        key = await self.data_key(conn, scope)
        if len(sealed) >= SLICE:
            return await asyncio.to_thread(open_sealed, key, sealed, aad_for(scope, record, field))
        return open_sealed(key, sealed, aad_for(scope, record, field))

    def forget(self, scope: str) -> None:
        self._data_keys.pop(scope, None)


async def rewrap_all(db: Database, keyring: Keyring, batch: int = 200) -> int:
    """Re-wrap every data key not wrapped by the current master key. Returns how many."""
    keyring.reload()
    current = keyring.keys.current
    done = 0
    while True:
        async with db.write() as conn:
            rows = (
                await conn.execute(
                    select(data_keys.c.scope, data_keys.c.master_key_id, data_keys.c.wrapped)
                    .where(data_keys.c.master_key_id != current.key_id)
                    .limit(batch)
                )
            ).all()
            for row in rows:
                plain = keyring._master(row.master_key_id).unwrap(bytes(row.wrapped), row.scope)
                await conn.execute(
                    update(data_keys)
                    .where(data_keys.c.scope == row.scope)
                    .where(data_keys.c.master_key_id == row.master_key_id)
                    .values(
                        master_key_id=current.key_id,
                        wrapped=current.wrap(plain, row.scope),
                        rewrapped_at=datetime.now(UTC),
                    )
                )
        done += len(rows)
        if len(rows) < batch:
            return done


async def rotate_master_key(
    db: Database, settings: Settings, *, keep_previous: bool = False, grace_seconds: float = 2.0
) -> tuple[str, str, int]:
    """Replace the master key file and re-wrap every data key, without stopping the service.

    1. the current key moves to ``keys/previous/<id>.key`` and a new key becomes ``master.key``;
    2. every data key is re-wrapped under the new key (in small transactions);
    3. after a grace period (nodes re-read the key file before wrapping), a final pass catches
       any key wrapped meanwhile, then the previous key file is deleted (unless kept).

    Returns (old key id, new key id, number of data keys re-wrapped).
    """
    keys = load_master_keys(settings)
    if keys.from_env:
        raise ConfigurationError(
            f"La clé maîtresse vient de {ENV_KEY} : placez la nouvelle clé dans {ENV_KEY} et "
            f"l'ancienne dans {ENV_PREVIOUS}, puis lancez « caducee keys rotate --rewrap-only ».",
            f"The master key comes from {ENV_KEY}: put the new key in {ENV_KEY} and the old "
            f"one in {ENV_PREVIOUS}, then run 'caducee keys rotate --rewrap-only'.",
        )
    old = keys.current
    previous_path = settings.keys_dir / "previous" / f"{old.key_id}.key"
    write_private_file(previous_path, old.encoded() + "\n")
    new = create_master_key_file(settings)
    keyring = Keyring(settings)
    count = await rewrap_all(db, keyring)
    if grace_seconds:
        await asyncio.sleep(grace_seconds)
    count += await rewrap_all(db, keyring)
    if not keep_previous:
        previous_path.unlink()
    return old.key_id, new.key_id, count
