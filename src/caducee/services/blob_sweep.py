"""Orphan blob files: staged before a transaction that never committed, named by no row.

A delivery writes its large blobs as files *before* the transaction naming them commits (see
:mod:`caducee.store.blobs`); a node killed in between (``kill -9``, power cut, full disk)
leaves files no row names. They are sealed, so they leak nothing, but they take room: this
sweep, a maintenance task, removes those older than :data:`ORPHAN_GRACE_SECONDS` (a file that
young may belong to a transaction still running). Removal respects a running backup's hold.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from caducee.app import App
from caducee.store import blob_refs_repo
from caducee.store.blobs import FileBlobStore, blob_files

log = logging.getLogger(__name__)

#: Age (seconds) under which an unnamed blob file is left alone: a delivery stages its files
#: moments before the commit that names them.
ORPHAN_GRACE_SECONDS = 3600
#: Files looked up per read transaction.
BATCH = 500


def _old_files(root: Path, older_than: float) -> list[str]:
    found = []
    for path in blob_files(root):
        try:
            if path.stat().st_mtime <= older_than:
                found.append(path.name)
        except FileNotFoundError:  # removed meanwhile
            continue
    return found


async def sweep_orphan_files(app: App, grace_seconds: float = ORPHAN_GRACE_SECONDS) -> int:
    """Remove the blob files no row names, older than ``grace_seconds``; how many went.
    Nothing to do for a store that keeps every blob in the database."""
    store = app.blobs
    if not isinstance(store, FileBlobStore):
        return 0
    candidates = await asyncio.to_thread(_old_files, store.root, time.time() - grace_seconds)
    removed = 0
    for start in range(0, len(candidates), BATCH):
        batch = candidates[start : start + BATCH]
        async with app.db.read() as conn:
            named = await blob_refs_repo.named_blob_ids(conn, batch)
        orphans = [blob_id for blob_id in batch if blob_id not in named]
        await store.remove_files(orphans)
        removed += len(orphans)
    if removed:
        log.info("orphan blob files removed count=%d", removed)
    return removed
