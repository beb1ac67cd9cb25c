"""The application context: settings, database, keyring and blob store of one node.

Services receive an :class:`App`; protocol adapters and the CLI open one with :func:`open_app`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from caducee.config import Settings
from caducee.errors import ConfigurationError
from caducee.store import audit_repo, migrate
from caducee.store.blobs import BlobStore, DatabaseBlobStore, FileBlobStore
from caducee.store.database import Database
from caducee.store.keyring import Keyring

C = TypeVar("C")
log = logging.getLogger(__name__)
#: The revision that makes the audit trail HMAC-chained with a sealed head.
AUDIT_HMAC_REVISION = "0018"


@dataclass
class App:
    settings: Settings
    db: Database
    keyring: Keyring
    blobs: BlobStore
    #: Per-node helpers that services create lazily (e.g. the delivery pipeline), by name.
    components: dict[str, Any] = field(default_factory=dict)
    #: Called (newest first) when the app closes, before the database is disposed.
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def component(self, kind: type[C], factory: Callable[[App], C]) -> C:
        """The node's single instance of a component (created on first use, closed with the
        app when it has an async ``close()``)."""
        existing = self.components.get(kind.__name__)
        if isinstance(existing, kind):
            return existing
        created = factory(self)
        self.components[kind.__name__] = created
        close = getattr(created, "close", None)
        if close is not None:
            self.closers.append(close)
        return created


async def check_schema(db: Database) -> migrate.SchemaState:
    """Refuse to serve on a schema this code does not match: an empty or older one (run
    ``caducee migrate``), or a newer one unless its newer migrations are all additive (a rolling
    upgrade: nodes of the previous revision keep serving while the others are upgraded)."""
    state = await migrate.schema_state(db)
    current, head = state.current, state.head
    if state.status == "ahead_compatible":
        log.warning(
            "schema=%s code=%s oldest_compatible=%s %s",
            current,
            head,
            state.oldest_compatible,
            "schema newer than this node, additive: serving; upgrade this node",
        )
    elif state.status == "behind":
        raise ConfigurationError(
            f"Le schéma de la base est à la révision {current}, ce nœud attend la révision "
            f"{head} : lancez « caducee migrate » (une fois, depuis ce nœud), puis "
            "redémarrez-le. Les nœuds de l'ancienne version continuent de servir si la "
            "migration est additive (voir docs/operations.md, « Plusieurs nœuds »).",
            f"Database schema is at revision {current}, this node expects revision {head}: "
            "run 'caducee migrate' (once, from this node), then restart it. Nodes of the "
            "previous version keep serving if the migration is additive (see "
            "docs/operations.md, 'Several nodes').",
        )
    elif state.status == "ahead":
        raise ConfigurationError(
            f"Le schéma de la base est à la révision {current}, plus récente que celle de ce "
            f"nœud ({head}), et ses migrations ne sont pas toutes additives : installez sur "
            "ce nœud la version des autres nœuds avant de le redémarrer.",
            f"Database schema is at revision {current}, newer than this node's ({head}), and "
            "its migrations are not all additive: install the other nodes' version on this "
            "node before restarting it.",
        )
    elif state.status != "same":
        raise ConfigurationError(
            f"Le schéma de la base est à la révision {current or 'vide'}, {head} attendue. "
            "Lancez « caducee init » (nouvelle installation) ou « caducee migrate ».",
            f"Database schema is at revision {current or 'empty'}, {head} expected. "
            "Run 'caducee init' (new installation) or 'caducee migrate'.",
        )
    return state


@asynccontextmanager
async def open_app(settings: Settings, *, upgrade: bool = False) -> AsyncIterator[App]:
    """Open the node's store. With ``upgrade``, apply pending migrations first."""
    keyring = Keyring(settings)  # refuses a missing or over-readable master key first
    db = Database(settings.effective_database_url)
    db.keyring = keyring  # the audit chain's key derives from it
    try:
        if upgrade and (await migrate.schema_state(db)).status.startswith("ahead"):
            # A later release migrated the database: nothing for this code to apply; it may
            # serve only if those migrations were additive.
            await check_schema(db)
        elif upgrade:
            before = await migrate.current_revision(db)
            await migrate.upgrade(db)
            if before is None or before < AUDIT_HMAC_REVISION:
                # Migration 0018 cannot compute MACs (no master key): seal the audit anchor now,
                # and only now, so that a later upgrade never re-seals a head it did not check.
                await audit_repo.seal_anchor(db)
        else:
            await check_schema(db)
        blobs: BlobStore
        if settings.blob_store == "database":
            blobs = DatabaseBlobStore()
        elif settings.blob_store == "s3":
            # botocore (about 20 MB) is loaded by the nodes that use S3 only
            from caducee.store.s3_blobs import S3BlobStore

            s3_store = S3BlobStore(settings, settings.blob_inline_max)
            blobs = s3_store
        else:
            blobs = FileBlobStore(settings.blobs_dir, settings.blob_inline_max)
        app = App(settings=settings, db=db, keyring=keyring, blobs=blobs)
        if settings.blob_store == "s3":
            app.closers.append(s3_store.close)  # the last to run: after the workers that use it
        try:
            yield app
        finally:
            for close in reversed(app.closers):
                await close()
    finally:
        await db.dispose()
